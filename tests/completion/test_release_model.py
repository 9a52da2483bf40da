"""The model that ships: loads from the package and proposes what a reader would expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from fillpoint.completion.documents import Document
from fillpoint.completion.engine import Engine, default_model_path
from fillpoint.completion.types import EngineSettings, Position

CLASS_SOURCE = """import os


class RetryPolicy:
    def __init__(self, path, max_retries, backoff_seconds=0.5):
        self.path = path
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds

    def describe(self):
        return os.path.basename(self.path)

    def should_retry(self, attempt):
        return attempt < self."""


@pytest.fixture(scope="module")
def engine(release_model_dir: Path) -> Engine:
    """The engine with the released model."""
    eng = Engine(EngineSettings(model_path=str(release_model_dir)))
    eng.load()
    assert eng.error is None, eng.error
    return eng


def _end(text: str) -> Position:
    lines = text.split("\n")
    return Position(len(lines) - 1, len(lines[-1]))


def test_bundled_release_is_the_default() -> None:
    assert (default_model_path() / "model.onnx").is_file()
    eng = Engine()
    eng.load()
    assert eng.ready, eng.error


def test_attribute_from_init_in_top5_after_self(engine: Engine) -> None:
    result = engine.complete(Document("file:///r.py", CLASS_SOURCE), _end(CLASS_SOURCE))
    labels = [item.text for item in result.items[:5]]
    assert "max_retries" in labels, labels


def test_attribute_completed_mid_token(engine: Engine) -> None:
    text = CLASS_SOURCE + "max_r"
    result = engine.complete(Document("file:///r.py", text), _end(text))
    assert result.items and result.items[0].text == "max_retries"
    assert result.replace is not None and result.replace.start.character == _end(text).character - 5


def test_inline_completion_is_one_line(engine: Engine) -> None:
    text = CLASS_SOURCE.rsplit("\n", 1)[0] + "\n        return "
    result = engine.inline(Document("file:///r.py", text), _end(text))
    assert "\n" not in result.text
