from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_protect

from pixel_middleware import get_visitor


def home(request: HttpRequest) -> HttpResponse:
    visitor = get_visitor(request)
    visitor.page("django/home", cp1="dj")
    visitor.customer(id="C-7", uc5="f")
    request.session["seen"] = True
    return render(request, "home.html", {"big": "x" * 400})


@csrf_protect
def form(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return HttpResponse("posted")
    return render(request, "form.html")


urlpatterns = [path("", home), path("form", form)]
