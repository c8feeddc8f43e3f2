from __future__ import annotations

import pytest

from pixel_middleware import wire

from .helpers import names, query_pairs, settings

ANON = settings(enable_anonymous_function=True, suppress_parameter=("cd", "uc5", "uc7"))
EID = "8123456789012345678"
Q = "p=600,shop%2Chome,1,1920x1080,24,1,1700000000000,0,1280x720,0"


def test_anonymous_request_gets_nc_and_loses_identifiers() -> None:
    params = wire.parse_query(
        f"{Q}&eid={EID}&one=1&X-WT-UA=Mozilla&X-WT-IP=1.2.3.4&uc701=a%40b.c&ui5=x"
        "&X-WT-SEC-CH-UA-PLATFORM=Linux&cd=42&uc5=f&uc50=keep&cdx=keep&cp1=teapot&pu=x&la=en"
    )
    out = wire.enforce(params, ANON, anonymous=True, ever_id=None)
    assert names(wire.encode(out)) == ["p", "nc", "uc50", "cdx", "cp1", "pu", "la"]
    assert out[1] == ("nc", "1")


def test_escaped_comma_in_page_name_survives() -> None:
    out = wire.enforce(wire.parse_query(Q), ANON, anonymous=True, ever_id=None)
    assert wire.encode(out).startswith("p=600,shop%2Chome,1,")


def test_identified_request_gets_the_cookie_everid_not_the_senders() -> None:
    params = wire.parse_query(f"{Q}&cp1=a&eid=1111111111111111111&nc=1&cd=42")
    out = wire.enforce(params, ANON, anonymous=False, ever_id=EID)
    assert query_pairs(wire.encode(out)) == [
        ("p", Q[2:]),
        ("eid", EID),
        ("cp1", "a"),
        ("cd", "42"),
    ]


def test_identified_without_everid_sends_neither_eid_nor_nc() -> None:
    out = wire.enforce(wire.parse_query(f"{Q}&nc=1"), ANON, anonymous=False, ever_id=None)
    assert names(wire.encode(out)) == ["p"]


@pytest.mark.parametrize("raw", ["", "cp1=x", "p=abc", "&&&", "P=600,a", "p=600," + "a" * 31_000])
def test_what_is_not_a_hit_is_refused(raw: str) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_query(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # A second page in one request: the first p is the page.
        ("p=600,a&p=600,b", [("p", "600,a")]),
        ("p=600,a&bad name=1", [("p", "600,a"), ("bad%20name", "1")]),
        ("p=600,a&cp1=<script>", [("p", "600,a"), ("cp1", "%3Cscript%3E")]),
        ("p=600,a&x=\u00e9", [("p", "600,a"), ("x", "%E9")]),
        ("p=600,a&cp1=a b", [("p", "600,a"), ("cp1", "a%20b")]),
        # The Smart Pixel cuts long URLs anywhere, also inside an escape.
        ("p=600,a&cp1=100%", [("p", "600,a"), ("cp1", "100%25")]),
        ("p=600,a&cp1=%C3%A9%C", [("p", "600,a"), ("cp1", "%C3%A9%25C")]),
        ("p=600,a&cp1=%zz", [("p", "600,a"), ("cp1", "%25zz")]),
        # PHP's product lists: bracketed names, escaped or not.
        (
            "p=600,a&ca2%5B0%5D=Men&ca2[1]=",
            [("p", "600,a"), ("ca2%5B0%5D", "Men"), ("ca2%5B1%5D", "")],
        ),
        # The beacon body and obfuscated order: p anywhere.
        ("?cp1=x&p=600,a", [("cp1", "x"), ("p", "600,a")]),
    ],
)
def test_odd_requests_from_real_clients_are_kept_sanitised(
    raw: str, expected: list[tuple[str, str]]
) -> None:
    assert wire.parse_query(raw) == expected


def test_identifiers_match_in_any_case_escape_and_bracket_form() -> None:
    params = wire.parse_query(
        f"{Q}&EID={EID}&%65id=1&eid%5B0%5D=2&CEID=crm-1&x-wt-ip=1.2.3.4&X-Wt-Ua=UA&UC701=r"
        "&X-WT-EID=9&One=1&FNS=1&fpv=t&cp1=kept&CD=42&uc5%5B0%5D=f"
    )
    out = wire.enforce(params, ANON, anonymous=True, ever_id=None)
    assert names(wire.encode(out)) == ["p", "nc", "cp1"]


def test_batch_lines_accept_every_form_mapps_clients_send() -> None:
    assert wire.parse_batch_line(f"wt?{Q}&cp1=a")[1] == ("cp1", "a")
    assert wire.parse_batch_line(f"/123451234512345/wt?{Q}")[0][0] == "p"
    assert wire.parse_batch_line(f"?{Q}")[0][0] == "p"  # the Smart Pixel's beacon
    assert wire.parse_batch_line(f"https://t.example/123451234512345/wt?{Q}")[0][0] == "p"
    # A bare query whose values hold a "?" is not cut there.
    assert wire.parse_batch_line(f"{Q}&pu=http%3A%2F%2Fx/?a")[1] == ("pu", "http%3A%2F%2Fx/?a")
    with pytest.raises(wire.WireError):
        wire.parse_batch_line("evil?cp1=x")
    # PHP's fork-curl consumer joins lines with a literal backslash-n; Windows with CRLF.
    assert wire.batch_lines("wt?p=600,a\\nwt?p=600,b\r\nwt?p=600,c\n\n") == [
        "wt?p=600,a",
        "wt?p=600,b",
        "wt?p=600,c",
    ]


def test_page_request_leaves_unknown_fields_empty() -> None:
    params = wire.page_request(
        page_name="shop/home",
        data=[("cp1", "a b"), ("cd", "C-1")],
        time_ms=1700000000000,
        referrer="1",
        page_url="http://x/home",
        language="de",
    )
    assert wire.encode(params) == (
        "p=600,shop%2Fhome,,,,,1700000000000,1,,&cp1=a%20b&cd=C-1&pu=http%3A%2F%2Fx%2Fhome&la=de"
    )


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        (None, "0"),
        ("", "0"),
        ("https://shop.example/a", "1"),
        ("https://SHOP.example", "1"),
        ("https://other.example/a?b=c", "https%3A%2F%2Fother.example%2Fa%3Fb%3Dc"),
    ],
)
def test_referrer_field(referrer: str | None, expected: str) -> None:
    assert wire.referrer_field(referrer, "shop.example") == expected


def test_application_cannot_set_identity_parameters() -> None:
    for bad in ("eid", "nc", "p", "bad name"):
        with pytest.raises(ValueError):
            wire.check_data_name(bad)
