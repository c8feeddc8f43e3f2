"""The compiled snippet is byte for byte what the Jinja2 template renders, for any page data."""

from __future__ import annotations

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pixel_middleware.cookies import PixelCookies
from pixel_middleware.decision import decide
from pixel_middleware.snippet import compiled, render_template
from pixel_middleware.visitor import Visitor

from .helpers import settings

NAMES = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,6}\Z").filter(
    lambda n: n not in {"p", "pu", "la", "eid", "nc"}
)
TEXT = st.text(max_size=40)  # any Unicode, including <, >, &, quotes and astral characters
SETTINGS = st.fixed_dictionaries(
    {
        "enable_anonymous_function": st.booleans(),
        "anonymous_opt_in": st.booleans(),
        "suppress_parameter": st.lists(NAMES, max_size=3).map(tuple),
        "server_side_page_views": st.booleans(),
        "honor_global_privacy_control": st.booleans(),
        "cookie_domain": st.sampled_from([None, ".shop.example"]),
        "prefix": st.sampled_from(["/_pixel", "/a/b-c"]),
    }
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    SETTINGS,
    st.sampled_from([None, "", "1", '""']),
    st.booleans(),
    TEXT,
    st.dictionaries(NAMES, TEXT, max_size=4),
    st.sampled_from([None, "abc123==", "r4nd/+_-"]),
    st.sampled_from([None, "http://shop.example/a?b=<c>&d"]),
    st.sampled_from(["0", "1", "https%3A%2F%2Fother.example%2F%3Fq%3D%3C%3E"]),
    st.sampled_from([{}, {"id": "c-42"}, {"uc5": "<&>"}]),
)
def test_compiled_snippet_equals_the_template(
    overrides: dict[str, object],
    choice: str | None,
    gpc: bool,
    page_name: str,
    params: dict[str, str],
    nonce: str | None,
    page_url: str | None,
    referrer: str,
    customer: dict[str, str],
) -> None:
    s = settings(**overrides)
    visitor = Visitor(
        s,
        decide(s, choice, gpc=gpc),
        PixelCookies(anonymous=choice),
        page_name="x",
        page_url=page_url,
        referrer=referrer,
        time_ms=1_700_000_000_000,
        gpc=gpc,
    )
    visitor.page(page_name, **params)
    visitor.customer(**customer)
    fast = compiled(s).render(visitor, nonce=nonce)
    reference = render_template(visitor, nonce=nonce)
    assert fast == reference.encode("ascii")


def test_a_page_seen_before_gets_its_own_time() -> None:
    """The second render of a page comes from what the first kept: only the time differs."""
    s = settings()
    pages = []
    for time_ms in (1_700_000_000_000, 1_700_000_000_123, 5):
        visitor = Visitor(
            s,
            decide(s, None),
            PixelCookies(),
            page_name="shop/home",
            page_url="http://shop.example/",
            referrer="1",
            time_ms=time_ms,
        )
        visitor.page(cp1="teapot")
        fast = compiled(s).render(visitor)
        assert fast == render_template(visitor).encode("ascii")
        assert f",{time_ms},".encode() in fast
        pages.append(fast)
    assert len(set(pages)) == 3


def test_what_belongs_to_one_visitor_is_not_kept() -> None:
    s = settings()
    kept = compiled(s)._pages
    visitor = Visitor(s, decide(s, None), PixelCookies(), page_name="p", page_url=None)
    visitor.customer(id="c-1")
    compiled(s).render(visitor)
    other_site = Visitor(
        s, decide(s, None), PixelCookies(), page_name="p", page_url=None, referrer="https%3A%2F%2Fx"
    )
    compiled(s).render(other_site)
    compiled(s).render(visitor, nonce="n0nce")
    assert not any("c-1" in repr(key) or "%2F%2Fx" in repr(key) for key in kept)


def test_compiled_once_per_settings() -> None:
    s = settings()
    assert compiled(s) is compiled(settings())
