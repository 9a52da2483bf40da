"""Fixtures for the reliability tests: the model they load, and its budget knobs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A tiny release built earlier (e.g. by a previous session) spares the build in long runs.
TINY_ENV = "FILLPOINT_TINY_MODEL"


@pytest.fixture(scope="session")
def small_model_dir(request: pytest.FixtureRequest) -> Path:
    """$FILLPOINT_TINY_MODEL if set, else the session's tiny release (built once)."""
    given = os.environ.get(TINY_ENV)
    if given:
        folder = Path(given)
        if not (folder / "model.onnx").is_file():
            pytest.fail(f"{TINY_ENV}={given} has no model.onnx")
        return folder
    return request.getfixturevalue("tiny_model_dir")
