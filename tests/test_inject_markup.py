"""The snippet goes before the page's last ``</body>`` tag, never into a script, style, comment
or CDATA section that holds the text ``</body>``, however the page is cut into chunks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pixel_middleware import PixelMiddleware, inject

from .asgi import html_app, request
from .helpers import settings


def insert(page: bytes) -> bytes | None:
    out = inject.insert_before_body_close([page], b"SNIP")
    return None if out is None else b"".join(out)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        # The page: a script after the real </body> holds the text </body>.
        (
            b"<body><p>x</p></body><script>var s = '</body>';</script></html>",
            b"<body><p>x</p>SNIP</body><script>var s = '</body>';</script></html>",
        ),
        (
            b"<body>a</body><SCRIPT type=module>x('</BODY>')</SCRIPT >",
            b"<body>aSNIP</body><SCRIPT type=module>x('</BODY>')</SCRIPT >",
        ),
        (
            b"<body>a</body><style>/* </body> */</style>",
            b"<body>aSNIP</body><style>/* </body> */</style>",
        ),
        (b"<body>a</body><!-- </body> -->", b"<body>aSNIP</body><!-- </body> -->"),
        (b"<body>a</body><!-- </body> --!>", b"<body>aSNIP</body><!-- </body> --!>"),
        (b"<body>a</body><![CDATA[ </body> ]]>", b"<body>aSNIP</body><![CDATA[ </body> ]]>"),
        (
            b"<body>a</body><textarea></body></textarea>",
            b"<body>aSNIP</body><textarea></body></textarea>",
        ),
        # An empty comment, <!-->, closes at once: what follows is markup again.
        (b"<body>a<!--></body>", b"<body>a<!-->SNIP</body>"),
        # A script that mentions <script and --> before the real tag changes nothing.
        (
            b"<body><script>a('<script'); b-->0</script></body>",
            b"<body><script>a('<script'); b-->0</script>SNIP</body>",
        ),
        # </bodyguard> is another tag.
        (b"<body>a</body><bodyguard></bodyguard>", b"<body>aSNIP</body><bodyguard></bodyguard>"),
    ],
)
def test_snippet_goes_before_the_last_body_tag(page: bytes, expected: bytes) -> None:
    assert insert(page) == expected
    for cut in range(1, len(page)):
        out = inject.insert_before_body_close([page[:cut], page[cut:]], b"SNIP")
        assert out is not None and b"".join(out) == expected, cut


@pytest.mark.parametrize(
    "page",
    [
        b"<body>a<script>var s = '</body>';</script>",
        b"<body>a<!-- </body> -->",
        b"<body>a<![CDATA[</body>]]>",
        b"<body>a</bodyguard>",
    ],
)
def test_a_body_close_that_is_only_text_means_no_injection(page: bytes) -> None:
    assert insert(page) is None


def test_the_apps_script_survives_the_middleware() -> None:
    page = b"<html><body><h1>x</h1></body><script>document.write('</body>')</script></html>"
    app = PixelMiddleware(html_app(page), settings=settings())
    body = request(app).body
    head, _, tail = body.partition(b"</body><script>")
    assert tail == b"document.write('</body>')</script></html>"  # untouched
    assert b"pixel-middleware-config" in head and head.startswith(b"<html><body><h1>x</h1>")


# ---------------------------------------------------------------------------------- generated

TEXT = st.text(alphabet="abc xyz\n.,;=\"'()/>", max_size=12).map(str.encode)


def any_case(word: str) -> st.SearchStrategy[bytes]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(
            c.upper() if u else c for c, u in zip(word, upper, strict=True)
        ).encode()
    )


BODY_CLOSE = st.tuples(any_case("body"), st.sampled_from([b">", b" >", b"\n>"])).map(
    lambda parts: b"</" + parts[0] + parts[1]
)
# What a script, style, comment or CDATA section may hold: text, the words </body>, and closers
# of the other contexts (a script may say b-->0).
INSIDE = st.lists(st.one_of(TEXT, BODY_CLOSE, st.just(b"-->"), st.just(b"]]>")), max_size=5).map(
    b"".join
)


@st.composite
def raw_text(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(["script", "style", "textarea", "title"]))
    attrs = draw(st.sampled_from([b"", b" type=x", b"\tid=a"]))
    inner = draw(INSIDE)
    if name == "script" and draw(st.booleans()):
        inner = b"<!--" + inner.replace(b"-->", b"") + b"//-->"  # the old hiding trick
    return b"<" + draw(any_case(name)) + attrs + b">" + inner + b"</" + draw(any_case(name)) + b">"


@st.composite
def comment(draw: st.DrawFn) -> bytes:
    inner = draw(INSIDE).replace(b"-->", b"")
    if draw(st.booleans()):
        inner += b"<script src=old.js></script>"  # a script switched off
    # The space: "<!-->" would be an empty comment, already closed (tested above).
    return b"<!-- " + inner + b"-->"


CDATA = INSIDE.map(lambda inner: b"<![CDATA[" + inner.replace(b"]]>", b"") + b"]]>")
MARKUP = st.one_of(
    TEXT.map(lambda t: b"<p>" + t + b"</p>"), st.just(b"<div>"), st.just(b"</div>"), TEXT
)
# Blocks where </body> may appear only as text.
HIDING = st.one_of(raw_text(), comment(), CDATA, MARKUP)


@st.composite
def page_and_position(draw: st.DrawFn) -> tuple[bytes, int]:
    before = draw(st.lists(st.one_of(HIDING, BODY_CLOSE), max_size=6))
    after = draw(st.lists(HIDING, max_size=4))
    head = b"<html><body>" + b"".join(before)
    tail = draw(BODY_CLOSE) + b"".join(after) + draw(st.sampled_from([b"", b"</html>\n"]))
    return head + tail, len(head)


@hypothesis_settings(max_examples=400)
@given(page_and_position(), st.lists(st.integers(min_value=0, max_value=400), max_size=4))
def test_generated_pages_get_the_snippet_before_the_real_tag(
    case: tuple[bytes, int], cuts: list[int]
) -> None:
    page, position = case
    points = sorted({min(c, len(page)) for c in cuts} | {0, len(page)})
    chunks = [page[a:b] for a, b in itertools.pairwise(points)]
    found = inject.body_close_position(chunks)
    assert found is not None
    number, offset = found
    assert sum(len(c) for c in chunks[:number]) + offset == position, (page, chunks)


@given(st.lists(HIDING, max_size=6))
def test_generated_pages_without_the_tag_are_left_alone(blocks: list[bytes]) -> None:
    assert insert(b"<html><body>" + b"".join(blocks)) is None
