"""Django integration.

Add ``"pixel_middleware.contrib.django"`` to ``INSTALLED_APPS`` for ``{% load pixel %}``.
"""
