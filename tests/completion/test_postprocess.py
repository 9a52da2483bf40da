"""Post-processing rules, kept as golden cases (input, expected output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fillpoint.completion import postprocess

CASES = json.loads((Path(__file__).parent / "data" / "postprocess_golden.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[f"{c['fn']}-{i}" for i, c in enumerate(CASES)])
def test_golden(case: dict) -> None:
    fn = getattr(postprocess, case["fn"])
    assert fn(*case["args"]) == case["expected"], case["why"]


def test_clean_inline_never_adds_text() -> None:
    out = postprocess.clean_inline("x = (", "a]) ) + b\nc", "")
    assert "a]) ) + b".startswith(out)
