"""The visitor object applications use: data in, what each visitor's requests may carry out."""

from __future__ import annotations

import pytest

from pixel_middleware.cookies import PixelCookies
from pixel_middleware.decision import decide
from pixel_middleware.visitor import Visitor

from .helpers import settings

EID = "8123456789012345678"


def visitor(cookies: dict[str, str] | None = None, **overrides: object) -> Visitor:
    s = settings(enable_anonymous_function=True, suppress_parameter=("cd", "uc5"), **overrides)
    sent = cookies or {}
    jar = PixelCookies(sent.get("miCookieOptOut"), sent.get("wtstp_eid"), sent.get("wtstp_sid"))
    return Visitor(
        s,
        decide(s, jar.anonymous),
        jar,
        page_name="shop/home",
        page_url="http://shop.example/home",
        time_ms=1_700_000_000_000,
    )


def test_page_and_customer_data() -> None:
    v = visitor({"wtstp_eid": EID})
    v.page("shop/teapot", cp1="teapot", cg1=3)
    v.customer(id="C-1", uc5="f", uc7=None)
    v.identify("C-2")
    assert v.page_name == "shop/teapot"
    assert v.data() == [("cp1", "teapot"), ("cg1", "3"), ("cd", "C-2"), ("uc5", "f"), ("uc7", "")]
    assert v.ever_id == EID and not v.identity.write_ever_id


@pytest.mark.parametrize("name", ["eid", "nc", "p", "bad-name!", "pu"])
def test_application_cannot_set_reserved_or_bad_names(name: str) -> None:
    v = visitor()
    with pytest.raises(ValueError):
        v.page(**{name: "x"})
    with pytest.raises(ValueError):
        v.customer(**{name: "x"})


def test_anonymous_visitor_data_and_urls() -> None:
    v = visitor({"miCookieOptOut": "1", "wtstp_eid": EID})
    v.customer(id="C-1", uc5="f", uc50="kept", uc701="a@b.c")
    assert v.anonymous and v.ever_id is None and v.session_id is None
    assert v.data() == [("uc50", "kept")]
    url = v.pixel_url(with_identity=True)
    assert "&nc=1&" in url and EID not in url and "cd=" not in url and "uc701" not in url
    assert v.identity.expire_ever_id and not v.identity.expire_session


def test_anonymize_an_anonymous_visitor_only_forgets_customer_data() -> None:
    v = visitor({"miCookieOptOut": "1"})
    v.customer(uc50="x")
    v.anonymize()
    assert v.data() == [] and v.ever_id is None and not v.identity.write_ever_id


def test_anonymize_gives_an_identified_visitor_new_identifiers() -> None:
    v = visitor({"wtstp_eid": EID, "wtstp_sid": "1" * 19})
    v.customer(id="C-1")
    before = v.pixel_url(with_identity=True)
    v.anonymize()
    after = v.pixel_url(with_identity=True)
    assert f"eid={EID}" in before and "cd=C-1" in before
    assert v.ever_id != EID and f"eid={v.ever_id}" in after and "cd=" not in after
    assert v.identity.write_ever_id and v.identity.write_session


def test_repr_and_config_hold_no_identifier() -> None:
    v = visitor({"wtstp_eid": EID})
    assert EID not in repr(v)
    assert EID not in str(v.config())
