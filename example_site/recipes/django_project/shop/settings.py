"""Settings of a small Django shop tracked by pixel_middleware (see asgi.py)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]  # also signs pixel_middleware's consent links
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS = ["pixel_middleware.contrib.django"]  # {% load pixel %}
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
    }
]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

PIXEL_MIDDLEWARE = {  # secret_key: Django's SECRET_KEY
    "track_id": "123451234512345",
    "enable_anonymous_function": True,
    "suppress_parameter": ["cd", "uc5", "uc7"],
    "store": "sqlite:///pixel_hits.sqlite3",
    # Django's admin, static and media files, health checks: no visitor, cookies or snippet.
    "exclude_paths": ["/admin/", "/static/", "/media/", "/health"],
}
