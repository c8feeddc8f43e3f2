"""The shop's one page, and a health check the middleware leaves alone."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from pixel_middleware import get_visitor


def product(request: HttpRequest) -> HttpResponse:
    visitor = get_visitor(request)
    visitor.page("shop/teapot", cg1="shop", cp1="teapot")
    return render(request, "product.html", {"visitor": visitor})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("", product), path("health", health)]
