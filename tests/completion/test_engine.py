"""The engine on a real (tiny) model: ranked identifiers, inline lines, and graceful failure."""

from __future__ import annotations

import dataclasses
import gc
import math
import re
import types
from pathlib import Path

import pytest
from doc_helpers import at_end, typed
from hypothesis import given, settings
from hypothesis import strategies as st

from fillpoint.completion.context import build_context
from fillpoint.completion.decoding import Candidate
from fillpoint.completion.documents import Document
from fillpoint.completion.engine import Engine, rank
from fillpoint.completion.typed_through import TypedThrough
from fillpoint.completion.types import (
    Cancelled,
    CancelToken,
    CompletionResult,
    EngineSettings,
    InlineResult,
    Position,
)

pytestmark = pytest.mark.slow

SOURCE = """import os


def join_all(parts, separator):
    joined = separator.join(parts)
    return os.path.join(joined, "x")


class Store:
    def __init__(self, max_items):
        self.max_items = max_items
        self.items = []

    def add(self, item):
        if len(self.items) < self.max_items:
            self.items.append(item)
"""


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    """An engine with the tiny release loaded."""
    eng = Engine(EngineSettings(model_path=str(tiny_model_dir), max_items=15))
    eng.load()
    assert eng.error is None, eng.error
    return eng


def test_loads_and_reports_the_model(engine: Engine) -> None:
    assert engine.ready and engine.model_name == "fillpoint-pycoder"


@pytest.mark.parametrize(
    ("tail", "partial"),
    [
        ("        self.it", "it"),
        ("        self.max_", "max_"),
        ("        return jo", "jo"),
        ("        x = os.pa", "pa"),
        ("        sep", "sep"),
        ("        self.", ""),
        ("        value = ", ""),
    ],
)
def test_items_extend_the_typed_partial_and_replace_exactly_it(
    engine: Engine, tail: str, partial: str
) -> None:
    doc, pos = at_end(SOURCE + tail)
    result = engine.complete(doc, pos)
    assert result.items, tail
    assert typed(doc, result.replace) == partial
    assert result.replace.end == pos
    assert len(result.items) <= 15
    texts = [item.text for item in result.items]
    assert len(set(texts)) == len(texts)
    for item in result.items:
        assert item.text.startswith(partial) and item.text.isidentifier(), item
        assert 0.0 < item.probability <= 1.0 and item.source in ("pycoder", "file")
    assert result.elapsed_ms > 0.0


def test_file_identifiers_are_offered_even_when_the_model_misses_them(engine: Engine) -> None:
    doc, pos = at_end(SOURCE + "        self.max_it")
    texts = [item.text for item in engine.complete(doc, pos).items]
    assert "max_items" in texts


@pytest.mark.parametrize(
    "tail",
    [
        '        s = "self.it',
        "        # self.it",
        '        """docstring self.it',
        "        f'{x} te",
    ],
)
def test_nothing_inside_strings_and_comments(engine: Engine, tail: str) -> None:
    doc, pos = at_end(SOURCE + tail)
    assert engine.complete(doc, pos) == CompletionResult()
    assert engine.inline(doc, pos).text == ""


@pytest.mark.parametrize("text", ["", "   \n\n  "])
def test_nothing_for_empty_documents(engine: Engine, text: str) -> None:
    doc, pos = at_end(text)
    assert engine.complete(doc, pos) == CompletionResult()
    assert engine.inline(doc, pos) == InlineResult()


@pytest.mark.parametrize(
    "tail", ["        self.items.app", "        return ", "        for item in ", "x = [1, 2"]
)
def test_inline_is_one_line_inserted_at_the_cursor(engine: Engine, tail: str) -> None:
    doc, pos = at_end(SOURCE + tail)
    result = engine.inline(doc, pos)
    assert "\n" not in result.text and "\r" not in result.text
    if result.text:
        assert result.replace.start == result.replace.end == pos
        # the byte-level line search (the default for ghost text) leaves the line unscored: 0
        assert 0.0 <= result.probability <= 1.0


def test_inline_with_code_after_the_cursor(engine: Engine) -> None:
    text = SOURCE + "        total = \n\nprint(Store(3).add(1))\n"
    doc = Document("file:///t.py", text)
    line = SOURCE.count("\n")
    result = engine.inline(doc, Position(line, len("        total = ")))
    assert "\n" not in result.text


def test_inline_can_be_switched_off(tiny_model_dir: Path) -> None:
    eng = Engine(EngineSettings(model_path=str(tiny_model_dir), inline=False))
    eng.load()
    doc, pos = at_end(SOURCE + "        return ")
    assert eng.inline(doc, pos) == InlineResult()
    assert eng.complete(doc, pos).items


def test_naive_mode_also_extends_the_partial(tiny_model_dir: Path) -> None:
    eng = Engine(EngineSettings(model_path=str(tiny_model_dir), mid_token="naive"))
    eng.load()
    doc, pos = at_end(SOURCE + "        self.it")
    for item in eng.complete(doc, pos).items:
        assert item.text.startswith("it")


def test_a_cancelled_request_raises_cancelled(engine: Engine) -> None:
    cancel = CancelToken()
    cancel.cancel()
    doc, pos = at_end(SOURCE + "        self.it")
    with pytest.raises(Cancelled):
        engine.complete(doc, pos, cancel)
    with pytest.raises(Cancelled):
        engine.inline(doc, pos, cancel)


def test_a_model_that_fails_to_load_gives_empty_results(tmp_path: Path) -> None:
    eng = Engine(EngineSettings(model_path=str(tmp_path / "missing")))
    eng.load()  # no exception
    assert not eng.ready and "lacks model.onnx" in eng.error and eng.model_name == ""
    doc, pos = at_end(SOURCE + "        self.it")
    assert eng.complete(doc, pos) == CompletionResult()
    assert eng.inline(doc, pos) == InlineResult()


def test_reload_after_a_failure_recovers(tiny_model_dir: Path, tmp_path: Path) -> None:
    eng = Engine(EngineSettings(model_path=str(tmp_path / "missing")))
    eng.load()
    assert eng.error
    eng.settings.model_path = str(tiny_model_dir)
    eng.load()
    assert eng.ready and eng.error is None


def test_unloaded_engine_answers_empty() -> None:
    eng = Engine(EngineSettings(model_path="/nonexistent"))
    doc, pos = at_end(SOURCE + "        self.it")
    assert eng.complete(doc, pos) == CompletionResult() and not eng.ready


# --- ranking --------------------------------------------------------------------------------


def test_rank_mixes_model_and_file_and_normalises() -> None:
    doc, pos = at_end(SOURCE + "        self.max_it")
    ctx = build_context(doc, pos)
    assert ctx.partial == "max_it" and ctx.after_dot
    found = [Candidate("em", -0.7), Candidate("ems", -0.7), Candidate("", -0.1)]
    items = rank(found, ctx, max_items=10, file_weight=0.3)
    # "max_items" is proposed by both the model and the file (used after a dot twice)
    assert [i.text for i in items] == ["max_items", "max_item"]
    assert [i.source for i in items] == ["pycoder", "pycoder"]
    assert sum(i.probability for i in items) == pytest.approx(1.0)
    assert items[0].probability > 0.6  # 0.35 + 0.3 before the scope boost


def test_rank_without_model_candidates_gives_file_identifiers_all_the_mass() -> None:
    doc, pos = at_end(SOURCE + "        jo")
    items = rank([], build_context(doc, pos), max_items=10, file_weight=0.3)
    assert {"joined", "join_all"} <= {i.text for i in items}
    assert all(i.text.startswith("jo") and i.source == "file" for i in items)
    assert sum(i.probability for i in items) == pytest.approx(1.0)
    probs = [i.probability for i in items]
    assert probs == sorted(probs, reverse=True)


def test_rank_mixes_codefill_names_into_the_model_side() -> None:
    doc, pos = at_end(SOURCE + "        ret")
    ctx = build_context(doc, pos)
    found = [Candidate("urn", -0.1), Candidate("ry", -2.0)]
    named = {"return": 0.5, "retries": 0.4, "ret": 0.1, "other": 0.9}  # "ret" is typed already
    items = rank(found, ctx, 10, 0.0, named, codefill_weight=0.5)
    by_name = {i.text: i for i in items}
    assert set(by_name) == {"return", "retry", "retries"}  # only names extending the typed text
    assert by_name["retries"].source == "codefill" and by_name["return"].source == "pycoder"
    assert sum(i.probability for i in items) == pytest.approx(1.0)
    # weight 0 (or no CodeFill names) ranks exactly as PyCoder alone
    alone = rank(found, ctx, 10, 0.3)
    assert rank(found, ctx, 10, 0.3, named, codefill_weight=0.0) == alone
    assert rank(found, ctx, 10, 0.3, {}, codefill_weight=0.5) == alone
    # without PyCoder candidates CodeFill's names take the whole model side
    only = rank([], ctx, 10, 0.0, named, codefill_weight=0.5)
    assert [i.text for i in only] == ["return", "retries"]
    assert only[0].probability == pytest.approx(0.5 / 0.9)


def test_the_shipped_release_serves_codefill_names_in_the_list(release_model_dir: Path) -> None:
    eng = Engine(EngineSettings(model_path=str(release_model_dir)))
    eng.load()
    assert eng.ready and eng._codefill is not None
    doc, pos = at_end(SOURCE + "        self.")
    ctx = build_context(doc, pos)
    named = eng._codefill_names(doc.text, ctx)
    assert named and all(p > 0 for p in named.values())
    items = eng.complete(doc, pos).items
    top_named = sorted(named, key=named.get, reverse=True)[:5]
    assert set(top_named) & {i.text for i in items[:10]}  # CodeFill's favourites are listed
    off = Engine(EngineSettings(model_path=str(release_model_dir), codefill_weight=0.0))
    off.load()
    assert off._codefill is None and all(
        i.source != "codefill" for i in off.complete(doc, pos).items
    )


def test_cancelled_work_leaves_no_reference_cycle(release_model_dir: Path) -> None:
    # a Cancelled kept in the CodeFill thread's future held the waiting frame, and the
    # arrays in it, until the garbage collector ran: megabytes per keystroke-cut idle work
    eng = Engine(EngineSettings(model_path=str(release_model_dir)))
    eng.load()
    assert eng._codefill is not None
    doc, pos = at_end(SOURCE + "        self.")
    cancel = CancelToken()
    cancel.cancel()
    gc.collect()
    for call in (eng.complete, eng.prepare):
        with pytest.raises(Cancelled):
            call(doc, pos, cancel)
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        frames = [o for o in gc.garbage if isinstance(o, types.FrameType)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert frames == []


def test_byte_level_ensembling_puts_codefill_names_into_the_byte_search(
    release_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = EngineSettings(
        model_path=str(release_model_dir), mid_token="bytelevel", byte_ensemble=True
    )
    eng = Engine(settings)
    eng.load()
    doc, pos = at_end(SOURCE + "        self.it")
    ctx = build_context(doc, pos)
    named = eng._codefill_names(SOURCE + "        self.", ctx)
    decoder = eng._byte_decoder("complete")
    assert decoder is not None and named
    seen: list[dict] = []
    real = decoder.complete_identifier
    monkeypatch.setattr(
        decoder, "complete_identifier", lambda *a, **kw: seen.append(kw) or real(*a, **kw)
    )
    items = eng.complete(doc, pos).items
    assert dict(seen[0]["names"]) == {n[2:]: p for n, p in named.items()}  # after "it"
    assert seen[0]["weight"] == settings.codefill_weight
    assert items and all(i.source != "codefill" for i in items)  # not mixed in a second time


def test_rank_marks_keywords_and_respects_max_items() -> None:
    doc, pos = at_end(SOURCE + "        ret")
    found = [Candidate("urn", -0.1), *(Candidate(f"x{i}", -3.0 - i) for i in range(20))]
    items = rank(found, build_context(doc, pos), max_items=5, file_weight=0.3)
    assert len(items) == 5 and items[0].text == "return" and items[0].kind == "keyword"
    assert all(i.kind == "identifier" for i in items[1:])


def assert_same_list(got: list, fresh: list) -> None:
    """The same names in the same order with the same probabilities, up to float rounding
    (a prompt run in pieces on a cache sums in another order than one run whole)."""
    assert [c.text for c in got] == [c.text for c in fresh]
    assert [c.probability for c in got] == pytest.approx([c.probability for c in fresh])


def test_prepare_warms_the_caches_and_changes_no_answer(tiny_model_dir: Path) -> None:
    def fresh() -> Engine:  # the healed prompt's cache (byte-level: test_bytelevel_engine)
        eng = Engine(EngineSettings(model_path=str(tiny_model_dir), max_items=15))
        eng.settings.mid_token = "healing"
        eng.load()
        return eng

    warmed, cold = fresh(), fresh()
    cut = SOURCE.index("append(item)") + 3  # "self.items.app|"
    before, after = at_end(SOURCE[: cut - 1]), at_end(SOURCE[:cut])
    assert warmed.prepare(*before) > 0
    # warm already: at most the prompt's last token runs again (a list made ahead after a
    # keystroke grew from this prompt's cache entry and took it over)
    assert warmed.prepare(*before) <= 1
    calls: list[str] = []
    lm = warmed._lm
    step, run = lm.step, lm.run
    lm.step = lambda ids, past: calls.append(f"step {ids.shape[1]}") or step(ids, past)
    lm.run = lambda *a, **k: calls.append("run") or run(*a, **k)

    # the next keystroke into the name: the list made while warming, filtered, no model call
    listed = cold.complete(*before).items
    got = warmed.complete(*after).items
    assert calls == []
    assert [c.text for c in got] == [c.text for c in listed if c.text.startswith("app")]
    assert sum(c.probability for c in got) == pytest.approx(1.0)

    warmed._typed = TypedThrough()  # without that list: the beam runs, the prompt does not
    assert_same_list(warmed.complete(*after).items, cold.complete(*after).items)
    # the healed prompt is the one warmed: at most its last token runs again
    assert {c for c in calls if c.startswith("step")} <= {"step 1"} and "run" in calls

    in_comment = at_end(SOURCE + "# a note about ")
    assert warmed.prepare(*in_comment) == 0
    assert Engine(EngineSettings(model_path=str(tiny_model_dir))).prepare(*before) == 0  # no model


def test_prepare_makes_the_list_after_the_keystroke_the_decoder_expects(
    tiny_model_dir: Path,
) -> None:
    def fresh() -> Engine:
        eng = Engine(EngineSettings(model_path=str(tiny_model_dir), max_items=15))
        eng.load()
        return eng

    warmed, cold = fresh(), fresh()
    calls: list[str] = []
    lm = warmed._lm
    step, run = lm.step, lm.run
    lm.step = lambda *a: calls.append("step") or step(*a)
    lm.run = lambda *a, **k: calls.append("run") or run(*a, **k)
    served = 0
    for m in re.finditer(r"\w+", SOURCE):  # the cursor after each name
        doc, pos = at_end(SOURCE[: m.end()])
        ctx = build_context(doc, pos)
        if ctx.in_string_or_comment:
            continue
        warmed.prepare(doc, pos)
        key, _ = warmed._next_keystroke(ctx, (warmed._lm, warmed._vocab), None)
        if not key:
            continue
        typed, at = at_end(SOURCE[: m.end()] + key)
        calls.clear()
        got = warmed.complete(typed, at)
        assert calls == []  # made ahead, while the user paused
        assert_same_list(got.items, cold.complete(typed, at).items)
        served += 1
    assert served >= 1  # the tiny model guesses a few


@pytest.mark.parametrize(
    ("text", "ghost", "want"),
    [
        ("def heap", "ify(heap):", ("(", True)),  # the name goes on, then `(` ends it
        ("x = items", ".pop()", (".", False)),  # the ghost text ends the name at once
        ("x = ", "items.pop()", ("", True)),  # a name starts here: no keystroke ends it
        ("total = count", "", ("", False)),  # no ghost text, no guess
        ("if ok:\n   ", " return", (" ", False)),  # the space that completes a level
        ("if ok:\n  ", " return", ("", False)),  # a space that does not
    ],
)
def test_the_keystroke_guess_is_where_the_decoded_text_ends_the_name(
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    ghost: str,
    want: tuple[str, bool],
) -> None:
    eng = Engine(EngineSettings(model_path=str(tiny_model_dir)))
    eng.load()
    monkeypatch.setattr(eng, "_ahead", lambda *a, **k: ghost)
    doc, pos = at_end(text)
    model = (eng._lm, eng._vocab)
    assert eng._next_keystroke(build_context(doc, pos), model, None) == want


def test_prepare_makes_the_guessed_keystrokes_list_before_the_ghost_text(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = Engine(EngineSettings(model_path=str(tiny_model_dir)))
    eng.load()
    made: list[str] = []
    monkeypatch.setattr(eng, "_ahead", lambda *a, **k: ".getcwd()")
    monkeypatch.setattr(eng, "_speculate", lambda doc, ctx, key, *a: made.append(f"list {key}"))
    monkeypatch.setattr(eng, "inline", lambda *a, **k: made.append("ghost") or InlineResult())
    monkeypatch.setattr(eng, "complete", lambda *a, **k: made.append("list here"))
    doc, pos = at_end("import os\nprint(os)\nos.getcwd()\nz = os")
    eng.prepare(doc, pos)
    # the decoder's keystroke, the ghost text, the file's habit (`os)`), the list here
    assert made == ["list .", "ghost", "list )", "list here"]


def test_file_follower_is_the_files_habit_after_the_name() -> None:
    from fillpoint.completion.engine import file_follower

    text = "import os\nos.path.join(a)\nos.getcwd()\nprint(os)\nx = os"
    assert file_follower(text, "") == "."  # os. twice, os) once
    assert file_follower(text, ".") == ")"  # the decoder's own guess is left out
    assert file_follower("a = 1\nb = 2\nc =", "") == " "  # after `=`: what followed `=`
    assert file_follower("value\nvalue_x\nvalue", "") == ""  # only new lines and name chars
    assert file_follower("", "") == "" and file_follower("fresh", "") == ""


def test_line_repeats_count_how_lines_that_start_alike_go_on() -> None:
    from fillpoint.completion.engine import line_repeats

    text = (
        "self.assertEqual(a, 1)\n"
        "    self.assertEqual(b, 2)\n"
        "self.assertEqual(a, 1)  \n"
        "self.assertTrue(c)\n"
        "self.assertEqual\n"  # nothing after the start: not a way to go on
        "    self.assertEqual("
    )
    doc, pos = at_end(text + "\n\nself.assertEqual(z, 3)\n")
    cursor = Position(5, len("    self.assertEqual("))
    ctx = build_context(doc, cursor)
    # indentation aside, trailing blanks aside; lines after the cursor count too
    assert line_repeats(ctx) == {"a, 1)": 2, "b, 2)": 1, "z, 3)": 1}
    # code after the cursor on its line, or nothing typed on it: no repeats
    doc2 = Document("file:///r.py", "self.assertEqual(a, 1)\nself.assertEqual()\n")
    assert not line_repeats(build_context(doc2, Position(1, len("self.assertEqual("))))
    assert not line_repeats(build_context(doc2, Position(1, 0)))


def test_choose_line_weighs_the_decoder_against_the_document() -> None:
    from collections import Counter

    from fillpoint.completion.engine import choose_line, repeat_candidates

    repeats = Counter({"b, 2)": 3, "a, 1)": 1})
    assert repeat_candidates("q)", repeats) == ["b, 2)", "a, 1)", "q)"]
    assert repeat_candidates("a, 1)", repeats) == ["b, 2)", "a, 1)"]
    scored = [Candidate("b, 2)", -9.0), Candidate("a, 1)", -2.0), Candidate("q)", -0.5)]
    assert choose_line("q)", scored, repeats, 0.0) == "q)"  # the decoder alone
    assert choose_line("q)", scored, repeats, 0.9) == "b, 2)"  # the document's habit
    # in between, a line the document has and the decoder finds likely can win
    assert choose_line("q)", [Candidate("a, 1)", -0.6), Candidate("q)", -0.5)], repeats, 0.3) == (
        "a, 1)"
    )
    assert choose_line("q)", [], repeats, 0.5) == "q)"  # nothing scored: the decoded line


@pytest.mark.parametrize("mode", ["healing", "auto"])  # auto: byte-level ghost text
def test_ghost_text_takes_a_line_the_document_repeats(tiny_model_dir: Path, mode: str) -> None:
    settings = EngineSettings(
        model_path=str(tiny_model_dir), line_repeat_weight=0.9, mid_token=mode
    )
    eng = Engine(settings)
    eng.load()
    line = "    zq_register(Store, 'kappa', retries=7)\n"
    doc, pos = at_end(SOURCE + line * 3 + "    zq_register(")
    result = eng.inline(doc, pos)
    assert result.text == "Store, 'kappa', retries=7)" and 0 < result.probability <= 1
    alone = Engine(EngineSettings(model_path=str(tiny_model_dir), line_repeat_weight=0.0))
    alone.load()
    assert alone.inline(doc, pos).text != "Store, 'kappa', retries=7)"  # the tiny model alone


@settings(max_examples=60, deadline=None)
@given(
    logps=st.lists(st.floats(-30, 0), min_size=1, max_size=5),
    counts=st.lists(st.integers(0, 5), min_size=5, max_size=5),
)
def test_choose_line_at_the_ends_of_its_weight(logps: list[float], counts: list[int]) -> None:
    from collections import Counter

    from fillpoint.completion.engine import choose_line

    names = [f"line{i}" for i in range(len(logps))]
    scored = [Candidate(n, lp) for n, lp in zip(names, logps, strict=True)]
    repeats = Counter({n: c for n, c in zip(names, counts, strict=False) if c})
    if not repeats:
        repeats = Counter({"elsewhere": 1})
    # weight 0: the decoder's likeliest line; weight 1: the file's most frequent scored line
    logp = {c.continuation: c.logp for c in scored}
    best = math.exp(logp[choose_line("x", scored, repeats, 0.0)])
    assert best == max(math.exp(c.logp) for c in scored)
    chosen = choose_line("x", scored, repeats, 1.0)
    assert repeats[chosen] == max(repeats[c.continuation] for c in scored)


def test_the_recycling_table_watches_the_prompts_only_while_it_drafts(
    tiny_model_dir: Path,
) -> None:
    table_mode = EngineSettings(
        model_path=str(tiny_model_dir), mid_token="healing", line_beam=1, line_drafts="table"
    )
    eng = Engine(table_mode)
    eng.load()
    doc, pos = at_end(SOURCE + "        total = ")
    eng.inline(doc, pos)
    cache = eng._caches["inline"]
    table = eng._recyclers["table"].table
    assert table is not None and cache._watchers == [table.update]
    assert table.next.any()  # it learnt from the prompt's tokens
    eng.settings = dataclasses.replace(table_mode, line_beam=3)  # ghost text from a beam now
    eng.inline(doc, pos)
    assert cache._watchers == []
