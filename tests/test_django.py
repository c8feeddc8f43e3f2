"""A real Django project (settings module, DTL templates with {% load pixel %}, Django's session,
CSRF and GZip middleware) served through PixelMiddleware with settings read from Django."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pixel_middleware import templating

from .helpers import injected_config, set_cookies

TOKEN_RE = re.compile(r"token(=|\" value=\")[A-Za-z0-9_.-]+")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    from .django_project.asgi import application

    with TestClient(
        application, base_url="http://django.example", headers={"sec-fetch-site": "same-origin"}
    ) as c:
        yield c


def test_settings_come_from_django(client: TestClient) -> None:
    from .django_project.asgi import application

    assert application.settings.secret_key == "django-test-secret"
    assert application.settings.suppress_parameter == ("cd", "uc5")


def test_page_is_tracked_through_gzip_and_django_middleware(client: TestClient) -> None:
    r = client.get("/", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.text.endswith("</noscript></body></html>\n")
    config = injected_config(r.text)
    assert config is not None
    assert config["page"] == {
        "name": "django/home",
        "params": [["cp1", "dj"], ["cd", "C-7"], ["uc5", "f"]],
    }
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    assert {"wtstp_eid", "wtstp_sid", "sessionid"} <= set(cookies)
    assert cookies["wtstp_eid"].value not in r.text
    assert "Cookie" in r.headers["vary"]


def test_gzip_body_is_valid_with_right_length(client: TestClient) -> None:
    # Read the raw bytes: the compressed body must match its Content-Length and inflate cleanly.
    with client.stream("GET", "/", headers={"accept-encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
    assert int(r.headers["content-length"]) == len(raw)
    assert b"pixel-middleware-config" in gzip.decompress(raw)


def test_anonymous_visitor_in_django(client: TestClient) -> None:
    r = client.get("/", headers={"cookie": "miCookieOptOut=1; wtstp_eid=8123456789012345678"})
    config = injected_config(r.text)
    assert config is not None and config["anonymous"] is True
    assert config["page"]["params"] == [["cp1", "dj"]]
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    assert cookies["wtstp_eid"].expired


def test_template_tags_render_signed_escaped_links(client: TestClient) -> None:
    r = client.get("/")
    assert "Anonymous &lt;please&gt;" in r.text and "<please>" not in r.text
    match = re.search(r'href="(/_pixel/optout\?[^"]+)"', r.text)
    assert match is not None
    href = match.group(1).replace("&amp;", "&")
    toggle = client.get(href, follow_redirects=False)
    assert toggle.status_code == 303 and toggle.headers["location"] == "/form"
    choice = set_cookies(toggle.headers.get_list("set-cookie"))["miCookieOptOut"]
    assert choice.value == "1" and choice.attrs["max-age"] == "3600"
    # {% pixel_optin_link %} without next= goes back to the current page.
    assert re.search(r'href="/_pixel/optin\?next=%2F&amp;token=', r.text)


def test_tags_render_the_same_html_as_the_jinja_helpers(client: TestClient) -> None:
    from .django_project.asgi import application

    r = client.get("/")
    s = application.settings
    link = templating.toggle_link(s, "optout", "Anonymous <please>", next_url="/form", duration=60)
    form = templating.toggle_form(s, "optout", "Go anonymous", next_url="/")
    assert TOKEN_RE.sub("token=T", str(link)) in TOKEN_RE.sub("token=T", r.text)
    assert TOKEN_RE.sub("token=T", str(form)) in TOKEN_RE.sub("token=T", r.text)


def test_post_form_toggle_bypasses_nothing_but_needs_no_django_csrf(client: TestClient) -> None:
    r = client.get("/")
    match = re.search(
        r'<form method="post" action="([^"]+)".*?name="token" value="([^"]+)"', r.text
    )
    assert match is not None
    action = match.group(1).replace("&amp;", "&")
    toggle = client.post(action, data={"token": match.group(2)}, follow_redirects=False)
    assert toggle.status_code == 303
    # Django's own CSRF protection still guards Django's views.
    assert client.post("/form").status_code == 403


def test_django_over_a_real_uvicorn_server() -> None:
    import http.client
    from urllib.parse import urlsplit

    from .django_project.asgi import application
    from .servers import serve

    with serve(application) as url:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        conn.request("GET", "/", headers={"accept-encoding": "gzip"})
        r = conn.getresponse()
        raw = r.read()
    assert r.status == 200 and r.getheader("content-encoding") == "gzip"
    assert int(r.getheader("content-length") or -1) == len(raw)
    page = gzip.decompress(raw)
    assert b"pixel-middleware-config" in page and page.rstrip().endswith(b"</html>")
