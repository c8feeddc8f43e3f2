"""The ASGI application: Django wrapped in PixelMiddleware, which reads PIXEL_MIDDLEWARE.

Run it, from the folder holding shop/ (pip install "pixel-middleware[example,django]"):
    DJANGO_SECRET_KEY=change-me-to-50-random-characters uvicorn shop.asgi:application
"""

import os

from django.core.asgi import get_asgi_application

from pixel_middleware import PixelMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

application = PixelMiddleware(get_asgi_application())
