"""The engine in byte-level mode on a real (tiny) model: identifiers that extend the typed
partial, the span they replace, one-line ghost text, cancellation, one call at a time."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from doc_helpers import at_end, typed

from fillpoint.completion import engine as engine_module
from fillpoint.completion.bytelevel_onnx import MAX_TAIL, ByteLevelDecoder
from fillpoint.completion.documents import Document
from fillpoint.completion.engine import Engine
from fillpoint.completion.types import Cancelled, CancelToken, EngineSettings, Position, Span

pytestmark = pytest.mark.slow

SOURCE = """import os


class Store:
    def __init__(self, max_items):
        self.max_items = max_items
        self.items = []

    def add(self, item):
        if len(self.items) < self.max_items:
            self.items.append(item)
        path = os.path.join("a", "b")
"""


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    """An engine with the tiny release loaded, in byte-level mode."""
    eng = Engine(
        EngineSettings(model_path=str(tiny_model_dir), max_items=15, mid_token="bytelevel")
    )
    eng.load()
    assert eng.error is None, eng.error
    return eng


@pytest.fixture
def calls(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Records the byte-level decoder's calls: (method, prefix)."""
    decoder = engine._byte_decoder("complete")  # built on first use
    assert isinstance(decoder, ByteLevelDecoder)  # byte-level, not the healing fallback
    seen: list[tuple[str, str]] = []
    for name in ("complete_identifier", "complete_line"):
        method = getattr(decoder, name)

        def spy(prefix: str, *args: object, _m: object = method, _n: str = name, **kw: object):
            seen.append((_n, prefix))
            return _m(prefix, *args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(decoder, name, spy)
    return seen


@pytest.mark.parametrize(
    ("tail", "partial"),
    [
        ("        self.it", "it"),
        ("        self.max_", "max_"),
        ("        x = os.pa", "pa"),
        ("        if le", "le"),
        ("        self.", ""),
        ("        value = ", ""),  # after a space: a mid-token prompt for the tokenizer
    ],
)
def test_items_extend_the_typed_partial_and_replace_exactly_it(
    engine: Engine, calls: list[tuple[str, str]], tail: str, partial: str
) -> None:
    doc, pos = at_end(SOURCE + tail)
    result = engine.complete(doc, pos)
    assert calls == [("complete_identifier", SOURCE + tail)]
    assert result.items, tail
    assert result.replace is not None
    assert typed(doc, result.replace) == partial and result.replace.end == pos
    texts = [item.text for item in result.items]
    assert len(set(texts)) == len(texts) and len(texts) <= 15
    for item in result.items:
        assert item.text.startswith(partial) and item.text.isidentifier(), item
        assert 0.0 < item.probability <= 1.0 and item.source in ("pycoder", "file")
    assert sum(item.probability for item in result.items) <= 1.0 + 1e-9


def test_model_items_are_the_decoders_continuations(engine: Engine) -> None:
    doc, pos = at_end(SOURCE + "        self.it")
    items = [i for i in engine.complete(doc, pos).items if i.source == "pycoder"]
    decoder = engine._byte_decoder("complete")
    assert decoder is not None
    found = dict(decoder.complete_identifier(SOURCE + "        self.it", k=10))
    assert items
    for item in items:
        assert item.text[len("it") :] in found, item


@pytest.mark.parametrize(
    "tail", ["        self.items.app", "        return ", "        for item in ", "x = [1, 2"]
)
def test_inline_is_one_line_inserted_at_the_cursor(
    engine: Engine, calls: list[tuple[str, str]], tail: str
) -> None:
    doc, pos = at_end(SOURCE + tail)
    result = engine.inline(doc, pos)
    assert calls == [("complete_line", SOURCE + tail)]
    assert "\n" not in result.text and "\r" not in result.text
    if result.text:
        assert result.replace == Span(pos, pos)
        assert 0.0 <= result.probability <= 1.0


def test_inline_with_code_after_the_cursor(engine: Engine) -> None:
    text = SOURCE + "        total = \n\nprint(Store(3).add(1))\n"
    line = SOURCE.count("\n")
    result = engine.inline(Document("file:///t.py", text), Position(line, len("        total = ")))
    assert "\n" not in result.text


class CancelAfter(CancelToken):
    """A token that is cancelled once it has been checked `n` times: mid-search."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def check(self) -> None:
        """Count down, then behave as cancelled."""
        self.left -= 1
        if self.left < 0:
            self.cancel()
        super().check()


def test_cancellation_stops_the_search_and_frees_the_decoder(engine: Engine) -> None:
    doc, pos = at_end(SOURCE + "        self.it")
    with pytest.raises(Cancelled):
        engine.inline(doc, pos, CancelAfter(0))
    for checks in (0, 1):  # the identifier beam always takes a second step: mid-search
        with pytest.raises(Cancelled):
            engine.complete(doc, pos, CancelAfter(checks))
    assert engine.complete(doc, pos).items  # the decoder's lock was released


def test_concurrent_requests_get_what_they_get_alone(engine: Engine) -> None:
    tails = ["        self.it", "        x = os.pa", "        self.max_", "        if le"]

    def ask(i: int) -> dict[str, float]:
        return {c.text: c.probability for c in engine.complete(*at_end(SOURCE + tails[i])).items}

    alone = [ask(i) for i in range(len(tails))]
    got: dict[int, dict[str, float]] = {}

    threads = [threading.Thread(target=lambda i=i: got.update({i: ask(i)})) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i, want in enumerate(alone):  # batched rows may differ in the last bits
        assert got.get(i, {}).keys() == want.keys()
        assert got[i] == pytest.approx(want, rel=1e-5)


def test_a_huge_word_at_the_cursor_is_healed_instead_of_taken_byte_by_byte(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The covers of a word need the encoding of every split point in it: for a word of
    thousands of characters that would take seconds, so such prompts are healed."""
    word = "x" * (MAX_TAIL + 1)
    decoder = engine._byte_decoder("complete")
    assert decoder is not None
    assert decoder.fits(SOURCE + "        self.it") and not decoder.fits(SOURCE + word)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("byte mode on a huge word")

    monkeypatch.setattr(decoder, "complete_identifier", refuse)
    monkeypatch.setattr(decoder, "complete_line", refuse)
    monkeypatch.setattr(decoder, "warm", refuse)
    doc, pos = at_end(SOURCE + "        " + word)
    assert all(i.text.startswith(word) for i in engine.complete(doc, pos).items)
    engine.inline(doc, pos)
    engine.prepare(doc, pos)


def test_a_tokenizer_the_byte_level_path_cannot_read_falls_back_to_healing(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(lm: object) -> None:
        raise ValueError("byte-level decoding needs a tokenizer without a normalizer")

    monkeypatch.setattr(engine_module, "ByteLevelDecoder", unreadable)
    eng = Engine(EngineSettings(model_path=str(tiny_model_dir), max_items=15))
    eng.load()
    doc, pos = at_end(SOURCE + "        self.it")
    items = eng.complete(doc, pos).items
    assert items and all(i.text.startswith("it") for i in items)  # healed instead
    assert eng._byte_decoder("complete") is None and eng._byte_decoder("inline") is None
    assert eng.prepare(*at_end(SOURCE + "        return ")) >= 0
    monkeypatch.undo()
    eng.load()  # another model (here the same one, readable now) gets byte-level again
    assert isinstance(eng._byte_decoder("complete"), ByteLevelDecoder)


def test_bytelevel_is_the_default_and_the_mode_can_change_after_loading(
    tiny_model_dir: Path,
) -> None:
    eng = Engine(EngineSettings(model_path=str(tiny_model_dir)))
    eng.load()
    assert eng.settings.mid_token == "bytelevel"
    eng.settings.mid_token = "healing"  # as a settings change does, without a reload
    assert eng._byte_decoder("inline") is None and eng._byte_decoder("complete") is None
    eng.settings.mid_token = "auto"
    assert eng._byte_decoder("complete") is None  # auto: byte-level ghost text, a healed list
    decoder = eng._byte_decoder("inline")
    assert isinstance(decoder, ByteLevelDecoder)
    assert decoder.scorer.cached == 1  # ghost text only: one prompt's caches
    eng.settings.mid_token = "bytelevel"
    assert eng._byte_decoder("complete") is decoder and decoder.scorer.cached == 2  # and lists
    doc, pos = at_end(SOURCE + "        self.it")
    assert all(i.text.startswith("it") for i in eng.complete(doc, pos).items)


def test_a_search_cut_short_on_a_long_new_prompt_runs_one_chunk_and_keeps_it(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fillpoint.completion import bytelevel_onnx
    from fillpoint.completion.runtime import OnnxDecoder

    monkeypatch.setattr(bytelevel_onnx, "PREFILL_CHUNK", 8)  # the tiny model's window is short
    lm = OnnxDecoder(tiny_model_dir)
    decoder, fresh = ByteLevelDecoder(lm), ByteLevelDecoder(lm)
    prefix = SOURCE + "        self.it"
    with pytest.raises(Cancelled):
        decoder.complete_identifier(prefix, cancel=CancelAfter(0))
    # one chunk of the prompt, kept, then the check stopped it
    assert decoder.scorer.calls == 1 and [len(p) for p in decoder.scorer._cache] == [8]
    got, want = dict(decoder.complete_identifier(prefix)), dict(fresh.complete_identifier(prefix))
    assert got.keys() == want.keys() and got == pytest.approx(want, rel=1e-4)


def test_warm_without_a_cancel_token_runs_the_prompt(tiny_model_dir: Path) -> None:
    from fillpoint.completion.runtime import OnnxDecoder

    decoder = ByteLevelDecoder(OnnxDecoder(tiny_model_dir))
    prefix = SOURCE + "        self.it"
    assert decoder.warm(prefix) > 0 and decoder.scorer.calls > 0
    calls = decoder.scorer.calls
    decoder.complete_identifier(prefix)  # the list starts from the warmed prompt
    assert decoder.warm(prefix) == 0 and decoder.scorer.calls > calls
