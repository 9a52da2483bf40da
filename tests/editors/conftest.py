"""Fixtures for the editor-client tests: a model folder for the real server."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def editor_model_dir(request: pytest.FixtureRequest) -> Path:
    """A released model: $FILLPOINT_MODEL or models/release, else the tiny test model; or skip."""
    try:
        return request.getfixturevalue("release_model_dir")
    except pytest.skip.Exception:
        pass
    try:
        return request.getfixturevalue("tiny_model_dir")
    except pytest.FixtureLookupError:
        pytest.skip("no model: set FILLPOINT_MODEL to a release folder")
