"""Decoding: healing, need masks, the identifier beam and greedy lines, against brute force.

A toy decoder with an explicit distribution (a seeded function of the ids so far) lets the
beam be compared with an exhaustive enumeration to float precision; the tiny trained model
checks the same sums through onnxruntime.
"""

from __future__ import annotations

import itertools
import math
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fillpoint.completion.bytelevel_base import top_k
from fillpoint.completion.decoding import (
    WORD,
    Candidate,
    Prompt,
    Vocab,
    allowed_for_need,
    beam_identifiers,
    beam_line,
    fim_prompt,
    greedy_line,
    heal,
    score_lines,
    score_words,
)
from fillpoint.completion.runtime import OnnxDecoder
from fillpoint.completion.types import Cancelled, CancelToken

needs_model = pytest.mark.slow  # tests that build (once per session) and run the tiny model

# --- a toy decoder --------------------------------------------------------------------------

TOY_TEXTS = ["", " ", "\n", "(", ".", "a", "b", "ab", "ba", "abc", "c", " a", " b", "1", "_x"]
TOY_EOT = 0
NEWLINE, LPAR, A, B, SPACE_A = (TOY_TEXTS.index(t) for t in ("\n", "(", "a", "b", " a"))


class ToyLM:
    """The decoder interface over TOY_TEXTS; the cache is just the ids seen so far."""

    block_size = 64
    eot_token = TOY_EOT
    special_ids = frozenset({TOY_EOT})
    token_text = TOY_TEXTS

    def __init__(
        self, script: dict[str, dict[int, float]] | None = None, tree: bool = False
    ) -> None:
        self.script = script or {}  # decoded text -> {piece: nats added to its logit}
        self.tree_inputs = tree  # whether `run` takes a mask: beams then share one cache

    def empty_past(self, batch: int = 1) -> np.ndarray:
        """No ids yet: (1, 1, B, 1, 0, 1)."""
        return np.zeros((1, 1, batch, 1, 0, 1))

    def dist(self, ids: list[int]) -> np.ndarray:
        """Log-probs of the next piece: seeded by the ids, nudged by the script."""
        seed = zlib.crc32(np.asarray(ids, dtype=np.int64).tobytes())
        logits = np.random.default_rng(seed).normal(0.0, 1.5, len(TOY_TEXTS))
        for piece, nats in self.script.get("".join(TOY_TEXTS[i] for i in ids), {}).items():
            logits[piece] += nats
        return logits - np.logaddexp.reduce(logits)

    def step(self, ids: np.ndarray, past: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Next-piece log-probs (B, V) after past + ids, and the extended cache."""
        hist = np.concatenate([past[0, 0, :, 0, :, 0], ids.astype(float)], axis=1)
        logp = np.stack([self.dist([int(i) for i in row]) for row in hist])
        return logp, hist[None, None, :, None, :, None]

    def run(
        self, ids: np.ndarray, past: np.ndarray, mask: np.ndarray, pos: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Log-probs (B, T, V) after each new id, given the cached and new ids its mask row
        shows (in cache order), and the extended cache; positions are implied by the ids."""
        assert self.tree_inputs
        hist = np.concatenate([past[0, 0, :, 0, :, 0], ids.astype(float)], axis=1)
        logp = np.stack(
            [
                [self.dist([int(i) for i in hist[b][mask[b, t]]]) for t in range(ids.shape[1])]
                for b in range(ids.shape[0])
            ]
        )
        assert (
            pos
            == [
                [int(m[: past.shape[4]].sum()) + int(m[past.shape[4] :].sum()) - 1 for m in mask[b]]
                for b in range(ids.shape[0])
            ]
        ).all()
        return logp, hist[None, None, :, None, :, None]


def toy_vocab(lm: ToyLM | None = None) -> Vocab:
    """Decoding tables for the toy vocabulary."""
    return Vocab(lm or ToyLM())


def ref_allowed(rest: str, piece: str) -> bool:
    """Reference need rule: the piece spells part of `rest`, or all of it and then word chars."""
    return bool(piece) and (
        rest.startswith(piece)
        or (piece.startswith(rest) and WORD.fullmatch(piece[len(rest) :]) is not None)
    )


def ref_identifiers(lm: ToyLM, prompt: Prompt, max_steps: int) -> dict[str, float]:
    """Brute force: log P(identifier continuation) summed over every path of the beam's rules."""
    texts, need = lm.token_text, prompt.need
    ends = [i for i, t in enumerate(texts) if i in lm.special_ids or not WORD.match(t[:1])]
    out: dict[str, float] = {}

    def walk(ids: list[int], text: str, score: float, depth: int) -> None:
        logp = lm.dist(ids)
        if len(text) >= len(need):
            cont = text[len(need) :]
            ident = need.lstrip() + cont
            if WORD.fullmatch(ident) and not ident[0].isdigit():  # names, not numbers
                end = np.logaddexp.reduce(logp[ends])
                out[cont] = float(np.logaddexp(out.get(cont, -math.inf), score + end))
        if depth == max_steps:
            return
        for t, piece in enumerate(texts):
            if t in lm.special_ids:
                continue
            if len(text) < len(need):
                ok = ref_allowed(need[len(text) :], piece)
            else:
                ok = WORD.fullmatch(piece) is not None
            if ok:
                walk([*ids, t], text + piece, score + logp[t], depth + 1)

    walk(list(prompt.ids) or [lm.eot_token], "", 0.0, 0)
    return out


# --- vocabulary tables and the need mask ------------------------------------------------------

HAND = ["", "f", "fo", "foo", "foobar", "foo_1", "foo(", "o", "oo", "bar", " foo", " ", "x.y", "7"]


def hand_vocab() -> Vocab:
    """A hand-checked vocabulary; id 0 is special."""
    return Vocab(SimpleNamespace(token_text=HAND, special_ids={0}))


def marked(mask: np.ndarray) -> set[str]:
    """The pieces a mask allows."""
    return {HAND[i] for i in np.flatnonzero(mask)}


def test_vocab_tables_on_a_hand_checked_vocabulary() -> None:
    vocab = hand_vocab()
    assert marked(vocab.is_word) == {"f", "fo", "foo", "foobar", "foo_1", "o", "oo", "bar", "7"}
    assert marked(vocab.ends_word) == {"", " foo", " "}
    assert marked(vocab.special) == {""}
    assert "" not in vocab.by_text and vocab.by_text["foo"] == 3


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("foo", {"f", "fo", "foo", "foobar", "foo_1"}),  # not "foo(": `(` is no word char
        ("oo", {"o", "oo"}),
        ("o", {"o", "oo"}),
        (" f", {" ", " foo"}),
        (" ", {" ", " foo"}),
        ("x", set()),
        ("x.", {"x.y"}),
        ("7", {"7"}),
    ],
)
def test_allowed_for_need(rest: str, expected: set[str]) -> None:
    assert marked(allowed_for_need(hand_vocab(), rest)) == expected
    assert expected == {t for t in HAND if ref_allowed(rest, t)}


# --- healing --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm(tiny_model_dir: Path) -> OnnxDecoder:
    """The tiny int8 release."""
    return OnnxDecoder(tiny_model_dir, threads=1)


@pytest.fixture(scope="module")
def vocab(lm: OnnxDecoder) -> Vocab:
    """Its decoding tables."""
    return Vocab(lm)


@needs_model
@pytest.mark.parametrize(
    ("prefix", "head", "need"),
    [
        ("self.assertEq", "self.", "assertEq"),
        ("x = ", "x =", " "),
        ("    return value", "    return", " value"),
        ("if x:\n    ", "if x:", "\n    "),
        ("x  = max_it", "x  =", " max_it"),
        ("foo.", "foo.", ""),
        ("foo(", "foo(", ""),
        ("", "", ""),
    ],
)
def test_heal_backs_off_the_growing_pre_token(
    lm: OnnxDecoder, prefix: str, head: str, need: str
) -> None:
    prompt = heal(lm, prefix, "healing")
    assert (prompt.ids, prompt.need) == (lm.encode(head), need)
    naive = heal(lm, prefix, "naive")
    assert (naive.ids, naive.need) == (lm.encode(prefix), "")


@needs_model
@pytest.mark.parametrize("head", ["import os\n\n", "if x:\n\t", "x = 1\n\n\n    "])
def test_heal_keeps_the_pieces_the_whitespace_gets_before_a_word(
    lm: OnnxDecoder, head: str
) -> None:
    # Before a word "\n\n" is two pre-tokens; at the end of a text, one.
    prompt = heal(lm, head + "sel", "healing")
    assert prompt.need == ("sel" if head.endswith(("\n", "\t")) else " sel")
    assert prompt.ids == lm.encode(head + "sel")[: len(prompt.ids)]
    assert lm.decode(prompt.ids) + prompt.need == head + "sel"
    if head.endswith("\n\n"):  # the head alone ends in the piece "\n\n", never seen before "sel"
        assert lm.token_text[lm.encode(head)[-1]] == "\n\n"
        assert prompt.ids != lm.encode(head)


PREFIX_PARTS = "self . x = ( max_it 1 é".split() + [" ", "  ", "\n", "\n\n", "\t", "    "]


@needs_model
@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(PREFIX_PARTS) | st.text(max_size=3), max_size=12).map("".join))
def test_heal_cuts_at_a_piece_boundary(lm: OnnxDecoder, prefix: str) -> None:
    prompt = heal(lm, prefix, "healing")
    assert lm.decode(prompt.ids) + prompt.need == prefix
    assert lm.encode(prefix)[: len(prompt.ids)] == prompt.ids


# --- the identifier beam against brute force ------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [Prompt([], ""), Prompt([A], ""), Prompt([], "ab"), Prompt([LPAR], " a"), Prompt([], "a")],
    ids=["empty", "after-a", "need-ab", "need-space-a", "need-a"],
)
@pytest.mark.parametrize("tree", [False, True], ids=["batched", "tree"])
def test_unpruned_beam_equals_exhaustive_enumeration(prompt: Prompt, tree: bool) -> None:
    lm = ToyLM(tree=tree)
    found = beam_identifiers(lm, toy_vocab(), prompt, beam=10_000, max_steps=3, top=10_000)
    ref = ref_identifiers(lm, prompt, max_steps=3)
    assert {c.continuation for c in found} == set(ref)
    for c in found:
        assert c.logp == pytest.approx(ref[c.continuation], abs=1e-12)
    assert [c.logp for c in found] == sorted((c.logp for c in found), reverse=True)


@pytest.mark.parametrize("tree", [False, True], ids=["batched", "tree"])
def test_pruned_beam_finds_a_subset_of_the_mass(tree: bool) -> None:
    lm = ToyLM(tree=tree)
    prompt = Prompt([], "a")
    ref = ref_identifiers(lm, prompt, max_steps=4)
    found = beam_identifiers(lm, toy_vocab(), prompt, beam=3, max_steps=4, top=5)
    assert 0 < len(found) <= 5
    assert len({c.continuation for c in found}) == len(found)
    for c in found:
        assert c.logp <= ref[c.continuation] + 1e-12
    assert [c.logp for c in found] == sorted((c.logp for c in found), reverse=True)


def test_one_step_beam_scores_one_piece_identifiers() -> None:
    found = beam_identifiers(ToyLM(), toy_vocab(), Prompt([], ""), max_steps=1, top=100)
    # "1" is a piece too, but a number, not a name
    assert {c.continuation for c in found} == {"a", "b", "ab", "ba", "abc", "c", "_x"}


def test_beam_stops_when_cancelled() -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        beam_identifiers(ToyLM(), toy_vocab(), Prompt([], ""), cancel=cancel)


def test_beam_with_an_unspellable_need_finds_nothing() -> None:
    assert beam_identifiers(ToyLM(), toy_vocab(), Prompt([], "zz")) == []


def segmentations(lm: OnnxDecoder, vocab: Vocab, need: str, full: str, limit: int) -> list:
    """Every piece sequence the beam may use to spell `full` (need first, then word pieces)."""
    out = []

    def walk(pos: int, pieces: list[int]) -> None:
        if pos == len(full):
            out.append(pieces)
            return
        if len(pieces) == limit:
            return
        for t, text in enumerate(lm.token_text):
            if t in lm.special_ids or not text or not full.startswith(text, pos):
                continue
            if pos >= len(need) and not vocab.is_word[t]:
                continue
            if pos < len(need) and not ref_allowed(need[pos:], text):
                continue
            walk(pos + len(text), [*pieces, t])

    walk(0, [])
    return out


def path_score(lm: OnnxDecoder, vocab: Vocab, ids: list[int], pieces: list[int]) -> float:
    """log P(pieces | ids) + log P(an identifier-ending piece next), each step from scratch."""
    total = 0.0
    for k in range(len(pieces) + 1):
        logp, _ = lm.step(np.asarray([ids + pieces[:k]]), lm.empty_past(1))
        if k < len(pieces):
            total += logp[0, pieces[k]]
        else:
            total += np.logaddexp.reduce(logp[0][vocab.ends_word])
    return float(total)


@needs_model
@pytest.mark.parametrize(
    "prefix", ["import os\n\npath = os.pa", "class A:\n    def __init__(self", "x = "]
)
def test_beam_scores_are_sums_of_model_log_probs(tiny_fp32_model_dir: Path, prefix: str) -> None:
    lm = OnnxDecoder(tiny_fp32_model_dir, threads=1)
    vocab = Vocab(lm)
    prompt = heal(lm, prefix, "healing")
    found = beam_identifiers(lm, vocab, prompt, beam=8, max_steps=4, top=10)
    assert found
    for cand in found[:3]:
        segs = segmentations(lm, vocab, prompt.need, prompt.need + cand.continuation, limit=4)
        scores = [path_score(lm, vocab, prompt.ids, s) for s in segs]
        assert scores
        assert cand.logp < np.logaddexp.reduce(scores) + 1e-4
        if len(scores) > 10:
            continue
        # the beam sums the paths it kept: some non-empty subset of all of them
        subsets = (
            np.logaddexp.reduce(list(c))
            for r in range(1, len(scores) + 1)
            for c in itertools.combinations(scores, r)
        )
        assert min(abs(cand.logp - s) for s in subsets) < 1e-4, (cand, scores)


@needs_model
def test_beam_on_the_trained_model(lm: OnnxDecoder, vocab: Vocab) -> None:
    prompt = heal(lm, "import os\n\nfor name in os.listdir(path):\n    print(na", "healing")
    assert prompt.need == "na"
    found = beam_identifiers(lm, vocab, prompt, top=10)
    assert 0 < len(found) <= 10 and isinstance(found[0], Candidate)
    assert [c.logp for c in found] == sorted((c.logp for c in found), reverse=True)
    assert len({c.continuation for c in found}) == len(found)
    for c in found:
        assert WORD.fullmatch("na" + c.continuation) and c.logp <= 0.0


@needs_model
def test_a_shared_prompt_cache_gives_the_batched_scores(tiny_fp32_model_dir: Path) -> None:
    lm = OnnxDecoder(tiny_fp32_model_dir, threads=1)
    vocab = Vocab(lm)
    prompt = heal(lm, "import os\n\nfor name in os.listdir(path):\n    print(na", "healing")
    words = ["me", "mes", "me_of_the_file", "ture", "", "x"]
    shared = beam_identifiers(lm, vocab, prompt), score_words(lm, vocab, prompt, words)
    lm.tree_inputs = False  # one cache copy per beam and per word, as before the mask input
    batched = beam_identifiers(lm, vocab, prompt), score_words(lm, vocab, prompt, words)
    for got, want in zip(shared, batched, strict=True):
        assert [c.continuation for c in got] == [c.continuation for c in want]
        assert [c.logp for c in got] == pytest.approx([c.logp for c in want], abs=1e-4)


# --- greedy lines ---------------------------------------------------------------------------


def test_greedy_line_follows_the_model_and_stops_at_the_newline() -> None:
    script = {"": {SPACE_A: 20}, " a": {B: 20}, " ab": {LPAR: 20}, " ab(": {NEWLINE: 20}}
    lm = ToyLM(script)
    text, mean = greedy_line(lm, toy_vocab(lm), Prompt([], ""))
    assert text == " ab("
    path = [SPACE_A, B, LPAR, NEWLINE]
    expected = [lm.dist([TOY_EOT, *path[:k]])[path[k]] for k in range(len(path))]
    assert mean == pytest.approx(np.mean(expected), abs=1e-12)


def test_greedy_line_spells_the_need_first() -> None:
    # the model prefers " b", but the typed " a" must be spelled again first
    script = {"": {TOY_TEXTS.index(" b"): 30, SPACE_A: 20}, " a": {B: 20}, " ab": {NEWLINE: 20}}
    lm = ToyLM(script)
    assert greedy_line(lm, toy_vocab(lm), Prompt([], " a"))[0] == "b"


def test_greedy_line_stops_at_end_of_text_and_at_max_tokens() -> None:
    lm = ToyLM({"a": {TOY_EOT: 30}})
    assert greedy_line(lm, toy_vocab(lm), Prompt([A], "")) == ("", 0.0)
    lm = ToyLM({"": {A: 30}, "a": {A: 30}, "aa": {A: 30}})
    text, _ = greedy_line(lm, toy_vocab(lm), Prompt([], ""), max_tokens=3)
    assert text == "aaa"


@needs_model
@pytest.mark.parametrize(
    "prefix", ["def f(x):\n    return", "import ", "for i in range(", "x = [1, 2", "class A:\n"]
)
def test_greedy_line_never_returns_a_newline(lm: OnnxDecoder, vocab: Vocab, prefix: str) -> None:
    for mode in ("healing", "naive"):
        text, mean = greedy_line(lm, vocab, heal(lm, prefix, mode), max_tokens=24)
        assert "\n" not in text and "\r" not in text and mean <= 0.0


def ref_best_line(lm: ToyLM, prompt: Prompt, max_tokens: int) -> tuple[float, str]:
    """Brute force: the best (score, line) over every token path under greedy_line's rules
    (the typed text spelled first; a line ends at a newline, the end of text or max_tokens)."""
    best = (-math.inf, "")

    def walk(ids: list[int], text: str, score: float) -> None:
        nonlocal best
        logp = lm.dist([*prompt.ids, *ids])
        for t, lp in enumerate(logp):
            rest = prompt.need[len(text) :]
            if rest and not ref_allowed(rest, lm.token_text[t]):
                continue
            if t in lm.special_ids:
                best = max(best, (score + lp, text[len(prompt.need) :]))
                continue
            new = text + lm.token_text[t]
            ended = len(new) > len(prompt.need) and "\n" in new[len(prompt.need) :]
            if ended or len(ids) + 1 == max_tokens:
                best = max(best, (score + lp, new[len(prompt.need) :].split("\n", 1)[0]))
            else:
                walk([*ids, t], new, score + lp)

    walk([], "", 0.0)
    return best


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    need=st.sampled_from(["", " ", " a", "a"]),
    max_tokens=st.integers(1, 3),
)
def test_a_wide_line_beam_finds_the_likeliest_line(seed: int, need: str, max_tokens: int) -> None:
    prompt = Prompt([A + seed % 3], need)
    score, line = ref_best_line(ToyLM({"": {A: seed % 7 - 3}}), prompt, max_tokens)
    assert math.isfinite(score)
    for tree in (False, True):  # a cache copy per branch, or one shared cache and a mask
        lm = ToyLM({"": {A: seed % 7 - 3}}, tree=tree)
        width = len(TOY_TEXTS) ** max_tokens  # every path fits: the beam is exhaustive
        assert beam_line(lm, toy_vocab(lm), prompt, width, max_tokens)[0] == line
        # greedy decoding is the beam of width 1
        text, mean = beam_line(lm, toy_vocab(lm), prompt, 1, max_tokens)
        want = greedy_line(lm, toy_vocab(lm), prompt, max_tokens)
        assert text == want[0] and mean == pytest.approx(want[1], abs=1e-12)


@given(
    row=st.lists(st.sampled_from([-np.inf, -3.0, -1.0, -1.0, 0.0, -0.5, -2.25]), min_size=1),
    k=st.integers(1, 9),
)
def test_top_k_is_the_start_of_a_stable_sort(row: list[float], k: int) -> None:
    values = np.asarray(row)
    assert top_k(values, k).tolist() == np.argsort(-values, kind="stable")[:k].tolist()


def test_the_line_beam_looks_past_a_likelier_first_token() -> None:
    # " b" is likelier first, but every line after it is poor; " a" leads to a sure line
    script = {
        "": {TOY_TEXTS.index(" b"): 10, SPACE_A: 8},
        " a": {NEWLINE: 30},
        " b": {},
    }
    lm = ToyLM(script)
    assert greedy_line(lm, toy_vocab(lm), Prompt([], ""), 2)[0].startswith(" b")
    assert beam_line(lm, toy_vocab(lm), Prompt([], ""), 3, 2)[0] == " a"


@needs_model
@pytest.mark.parametrize("prefix", ["def f(x):\n    return", "import ", "for i in range("])
def test_the_line_beam_on_the_trained_model(lm: OnnxDecoder, vocab: Vocab, prefix: str) -> None:
    prompt = heal(lm, prefix, "healing")
    assert beam_line(lm, vocab, prompt, 1, 24) == greedy_line(lm, vocab, prompt, 24)
    text, mean = beam_line(lm, vocab, prompt, 3, 24)
    assert "\n" not in text and mean <= 0.0
    shared, lm.tree_inputs = lm.tree_inputs, not lm.tree_inputs
    try:  # the other way of running branches: the same line
        assert beam_line(lm, vocab, prompt, 3, 24)[0] == text
    finally:
        lm.tree_inputs = shared


@needs_model
@pytest.mark.parametrize("shared", [True, False])
def test_score_lines_is_the_teacher_forced_line_then_its_likeliest_break(
    tiny_fp32_model_dir: Path, shared: bool
) -> None:
    lm = OnnxDecoder(tiny_fp32_model_dir, threads=1)
    lm.tree_inputs = lm.tree_inputs and shared  # one shared cache and a mask, or a copy each
    vocab = Vocab(lm)
    prompt = heal(lm, "import os\n\nfor name in os.listdir(path):\n    print(na", "healing")
    rests = ["me)", "me, path)", "me.upper())  # loud", "x" * 200]
    got = score_lines(lm, vocab, prompt, rests, max_tokens=24)
    assert [c.continuation for c in got] == rests[:3]  # the last is longer than 24 pieces
    for c in got:
        logp, past = lm.step(np.asarray([prompt.ids]), lm.empty_past())
        total = 0.0
        for t in lm.encode(prompt.need + c.continuation):  # one call per piece
            total += float(logp[0, t])
            logp, past = lm.step(np.asarray([[t]]), past)
        breaks = [i for i, text in enumerate(lm.token_text) if text.startswith("\n")]
        assert c.logp == pytest.approx(total + float(logp[0, breaks].max()), abs=1e-4)


# --- FIM prompts ----------------------------------------------------------------------------


@needs_model
def test_fim_prompt_puts_the_suffix_in_view(lm: OnnxDecoder) -> None:
    prompt = heal(lm, "def area(r):\n    return 3.14 * r", "healing")
    fim = fim_prompt(lm, prompt, "\n\nprint(area(2))\n")
    fp, fs, fm = lm.fim_ids
    # suffix-prefix-middle: the prefix ends the prompt, where the middle continues it
    assert fim.ids[:2] == [fp, fs] and fim.need == prompt.need
    cut = fim.ids.index(fm)
    assert fim.ids[cut + 1 :] == prompt.ids
    assert lm.decode(fim.ids[2:cut]) == "\n\nprint(area(2))\n"
    assert fim_prompt(lm, prompt, "  \n") is prompt  # nothing after the cursor: plain prompt


@needs_model
def test_fim_prompt_fits_the_context(lm: OnnxDecoder) -> None:
    prompt = Prompt(lm.encode("x = 1\n" * 200), "")
    fim = fim_prompt(lm, prompt, "y = 2\n" * 100, suffix_tokens=16)
    assert len(fim.ids) <= lm.block_size - 64
    suffix = fim.ids[2 : fim.ids.index(lm.fim_ids[2])]
    assert len(suffix) == 16
    assert fim.ids[-1] == prompt.ids[-1]  # the prefix keeps its end
