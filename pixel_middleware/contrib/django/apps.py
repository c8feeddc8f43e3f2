from django.apps import AppConfig


class PixelConfig(AppConfig):
    name = "pixel_middleware.contrib.django"
    label = "pixel_middleware"
    verbose_name = "Pixel middleware"
