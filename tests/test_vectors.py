"""The shared rule vectors (tests/vectors.json) against the Python rules; test_browser runs them
against static/pixel.js, so both sides must agree case by case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pixel_middleware import wire
from pixel_middleware.decision import decide

from .helpers import settings

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "vectors.json").read_text())[
    "cases"
]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_rules_match_vectors(case: dict[str, Any]) -> None:
    ui = case["settings"]
    s = settings(
        enable_anonymous_function=ui["enableAnonymousFunction"],
        anonymous_opt_in=ui["anonymousOptIn"],
        suppress_parameter=tuple(ui["suppressParameter"]),
    )
    decision = decide(s, case["cookie"], gpc=case["gpc"])
    assert decision.anonymous is case["expected"]["anonymous"]
    out = wire.enforce(
        [tuple(p) for p in case["params"]], s, anonymous=decision.anonymous, ever_id=None
    )
    assert [list(p) for p in out] == case["expected"]["params"]
