"""Fixtures shared by all test folders; keep this small."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def release_model_dir() -> Path:
    """A released model folder: $FILLPOINT_MODEL if set, else models/release; skip without one."""
    folder = Path(os.environ.get("FILLPOINT_MODEL") or REPO / "models" / "release")
    if not (folder / "model.onnx").is_file():
        pytest.skip(f"no released model in {folder} (model.onnx missing)")
    return folder
