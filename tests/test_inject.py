from __future__ import annotations

import gzip

import pytest

from pixel_middleware import inject
from pixel_middleware.cookies import PixelCookies
from pixel_middleware.decision import decide
from pixel_middleware.snippet import render_template
from pixel_middleware.visitor import Visitor

from .helpers import injected_config, settings


def visitor(**overrides: object) -> Visitor:
    s = settings(**overrides)
    return Visitor(s, decide(s, None), PixelCookies(), page_name="x/home", page_url="http://x/home")


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (b"<html><body>a</body></html>", b"<html><body>aSNIP</body></html>"),
        (b"<BODY>a</BODY>", b"<BODY>aSNIP</BODY>"),
        (b"<body>a</body><!-- </body> -->", b"<body>aSNIP</body><!-- </body> -->"),
        (b"<body>a</body >", b"<body>aSNIP</body >"),
    ],
)
def test_insert_before_last_body_close(page: bytes, expected: bytes) -> None:
    assert insert(page, b"SNIP") == expected
    # However the app cut the page into body messages, the result is the same.
    for cut in range(1, len(page)):
        for second in (cut + 1, cut + 3):
            chunks = [page[:cut], page[cut:second], page[second:]]
            out = inject.insert_before_body_close(chunks, b"SNIP")
            assert out is not None and b"".join(out) == expected, chunks


def insert(page: bytes, snippet: bytes) -> bytes | None:
    """``insert_before_body_close`` on a page held in one chunk."""
    out = inject.insert_before_body_close([page], snippet)
    return None if out is None else b"".join(out)


@pytest.mark.parametrize("page", [b"", b"<p>fragment", b"<html><body>unclosed", b"\xff\xfe<body"])
def test_no_body_close_means_no_injection(page: bytes) -> None:
    assert insert(page, b"SNIP") is None


@pytest.mark.parametrize(
    ("csp", "nonce"),
    [
        (None, None),
        ("default-src 'self'", None),
        ("script-src 'self' 'nonce-abc123=='", "abc123=="),
        ("img-src *; script-src 'nonce-r4nd'", "r4nd"),
        ("style-src 'nonce-notforscripts'", None),
        ("script-src 'nonce-bad\"quote'", None),
    ],
)
def test_csp_nonce_is_reused_never_invented(csp: str | None, nonce: str | None) -> None:
    assert inject.csp_nonce(csp) == nonce


def test_snippet_has_config_script_and_noscript_but_no_identifier() -> None:
    v = visitor()
    assert v.ever_id is not None
    html = render_template(v, nonce="n0nce")
    assert '<script src="/_pixel/pixel.js" defer nonce="n0nce"></script>' in html
    assert '<noscript><img src="/_pixel/123451234512345/wt?p=600,x%2Fhome,' in html
    assert v.ever_id not in html and v.session_id not in html  # type: ignore[operator]
    config = injected_config(html)
    assert config is not None and config["trackId"] == "123451234512345"


def test_config_json_cannot_close_the_script_block() -> None:
    v = visitor()
    v.page("</script><script>alert(1)</script>", cp1="<b>&")
    html = render_template(v)
    assert "</script><script>alert" not in html
    config = injected_config(html)
    assert config is not None
    assert config["page"]["name"] == "</script><script>alert(1)</script>"
    assert config["page"]["params"] == [["cp1", "<b>&"]]


def test_gzip_round_trip_and_bomb_limit() -> None:
    data = b"<body>" + b"a" * 10_000 + b"</body>"
    packed = inject.gzip_bytes(data)
    assert gzip.decompress(packed) == data
    assert inject.gunzip(packed, limit=20_000) == data
    assert inject.gunzip(packed, limit=1_000) is None
    assert inject.gunzip(b"not gzip", limit=1_000) is None


def test_config_points_at_first_party_endpoint_even_with_track_domain() -> None:
    config = visitor(track_domain="q3.webtrekk.net").config()
    assert config["endpoint"] == "/_pixel/123451234512345/wt"
    assert config["everIdCookie"] is None


def test_direct_mode_points_at_mapp_and_names_the_everid_cookie() -> None:
    v = visitor(
        track_domain="q3.webtrekk.net", send_to_track_domain=True, identifier_cookies_httponly=False
    )
    config = v.config()
    assert config["endpoint"] == "https://q3.webtrekk.net/123451234512345/wt"
    assert config["everIdCookie"] == "wtstp_eid"
    assert v.pixel_url().startswith("https://q3.webtrekk.net/123451234512345/wt?p=600,")
    assert v.ever_id is not None and v.ever_id not in render_template(v)


@pytest.mark.parametrize("position", [0, 10, 65_530, 65_536, 65_540, 100_000, 199_990])
def test_body_close_found_anywhere_in_a_large_page(position: int) -> None:
    page = bytearray(b"x" * 200_000)
    page[position : position + 7] = b"</BoDy>"
    out = insert(bytes(page), b"SNIP")
    assert out is not None
    assert out[position : position + 11] == b"SNIP</BoDy>"
    assert out.replace(b"SNIP", b"", 1) == bytes(page)


def test_last_body_close_wins_across_the_tail_boundary() -> None:
    page = b"<body></body>" + b"y" * 100_000 + b"</body>" + b"z" * 70_000
    out = insert(page, b"SNIP")
    assert out is not None and out.index(b"SNIP") == 13 + 100_000
