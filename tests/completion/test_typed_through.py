"""Typing what was suggested reuses the suggestion; any other edit runs the model again."""

from __future__ import annotations

from pathlib import Path

import pytest

from fillpoint.completion.documents import Document
from fillpoint.completion.engine import Engine
from fillpoint.completion.typed_through import TypedThrough
from fillpoint.completion.types import CompletionCandidate, EngineSettings, Position

ITEMS = [
    CompletionCandidate("balance", 0.5, "pycoder"),
    CompletionCandidate("bank", 0.3, "pycoder"),
    CompletionCandidate("owner", 0.2, "file"),
]


def test_list_is_filtered_while_typing_into_the_name() -> None:
    cache = TypedThrough()
    cache.remember_list("u", "x = self.", "", ITEMS)
    got = cache.list_for("u", "x = self.", "bal")
    assert [c.text for c in got] == ["balance"] and got[0].probability == pytest.approx(1.0)
    got = cache.list_for("u", "x = self.", "ba")
    assert [c.text for c in got] == ["balance", "bank"]
    assert sum(c.probability for c in got) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("uri", "head", "partial"),
    [
        ("other", "x = self.", "b"),  # another document
        ("u", "y = self.", "b"),  # the text before the name changed
        ("u", "x = self.", ""),  # nothing typed since
        ("u", "x = self.", "z"),  # typed something no item matches
    ],
)
def test_list_is_not_reused_after_other_edits(uri: str, head: str, partial: str) -> None:
    cache = TypedThrough()
    cache.remember_list("u", "x = self.", "", ITEMS)
    assert cache.list_for(uri, head, partial) is None


def test_has_list_only_for_the_same_head_and_typed_part() -> None:
    cache = TypedThrough()
    assert not cache.has_list("u", "x = self.", "")
    cache.remember_list("u", "x = self.", "b", ITEMS)
    assert cache.has_list("u", "x = self.", "b")
    assert not cache.has_list("u", "x = self.", "ba") and not cache.has_list("u", "x = ", "b")
    assert not cache.has_list("v", "x = self.", "b")


def test_a_list_made_ahead_serves_exactly_that_document() -> None:
    cache = TypedThrough()
    cache.remember_speculated("u", "x = os.\ny = 1\n", 7, ITEMS)
    assert cache.speculated("u", "x = os.\ny = 1\n", 7) == ITEMS
    assert cache.speculated("u", "x = os.\ny = 2\n", 7) is None  # other text below
    assert cache.speculated("u", "x = os.\ny = 1\n", 6) is None
    assert cache.speculated("v", "x = os.\ny = 1\n", 7) is None
    cache.remember_speculated("u", "x = os(\ny = 1\n", 7, ITEMS[:1])  # a second guess
    assert cache.speculated("u", "x = os.\ny = 1\n", 7) == ITEMS
    assert cache.speculated("u", "x = os(\ny = 1\n", 7) == ITEMS[:1]
    cache.remember_speculated("u", "x = os[\ny = 1\n", 7, ITEMS)  # the oldest goes
    assert cache.speculated("u", "x = os.\ny = 1\n", 7) is None


def test_ghost_text_shrinks_as_it_is_typed() -> None:
    cache = TypedThrough()
    cache.remember_ghost("u", "print(self.", "balance)")
    assert cache.ghost_for("u", "print(self.bal") == "ance)"
    assert cache.ghost_for("u", "print(self.bat") is None  # typed something else
    assert cache.ghost_for("u", "print(self.balance)") is None  # typed all of it
    assert cache.ghost_for("u", "print(self.") is None  # nothing typed


def test_engine_reuses_its_list_when_the_name_is_typed_on(tiny_model_dir: Path) -> None:
    engine = Engine(EngineSettings(model_path=str(tiny_model_dir)))
    engine.load()
    text = "import os\n\n\ndef f(path):\n    return os.path.join(path, path)\n\n\nos.p"
    first = engine.complete(Document("file:///t.py", text), Position(7, 4))
    # a shown name that goes on after the next character (a list for exactly the typed
    # text leaves that text out, so a two-letter name alone would not be reused)
    target = next(c.text for c in first.items if len(c.text) > 2)
    typed = text + target[1:2]
    second = engine.complete(Document("file:///t.py", typed), Position(7, 5))
    assert second.items and all(c.text.startswith("p" + target[1:2]) for c in second.items)
    assert {c.text for c in second.items} <= {c.text for c in first.items}
