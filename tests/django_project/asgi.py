"""``application`` exactly as a Django project's asgi.py would write it; settings from Django."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")

from django.core.asgi import get_asgi_application

from pixel_middleware import PixelMiddleware

application = PixelMiddleware(get_asgi_application())
