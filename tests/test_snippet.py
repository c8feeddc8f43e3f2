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
)
def test_compiled_snippet_equals_the_template(
    overrides: dict[str, object],
    choice: str | None,
    gpc: bool,
    page_name: str,
    params: dict[str, str],
    nonce: str | None,
    page_url: str | None,
) -> None:
    s = settings(**overrides)
    visitor = Visitor(
        s,
        decide(s, choice, gpc=gpc),
        PixelCookies(anonymous=choice),
        page_name="x",
        page_url=page_url,
        time_ms=1_700_000_000_000,
        gpc=gpc,
    )
    visitor.page(page_name, **params)
    fast = compiled(s).render(visitor, nonce=nonce)
    reference = render_template(visitor, nonce=nonce)
    assert fast == reference.encode("ascii")


def test_compiled_once_per_settings() -> None:
    s = settings()
    assert compiled(s) is compiled(settings())
