"""Metrics and samplers of the evaluation, against hand-computed values and brute force."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fillpoint.training.eval_baselines import (
    line_table,
    line_token_scores,
    ngram_token_accuracy,
    tokens_after,
)
from fillpoint.training.eval_infill import span_in
from fillpoint.training.eval_metrics import (
    edit_sim,
    lcs_length,
    meteor,
    meteor_alignment,
    rank_metrics,
    rouge_l,
)
from fillpoint.training.eval_ngram import Ngram, context_tokens, file_copy, first_statement, lex
from fillpoint.training.eval_statement import StatementSample, score

tokens = st.lists(st.sampled_from("abc"), max_size=6)


def brute_lcs(a: list[str], b: list[str]) -> int:
    """The longest common subsequence by trying every subsequence of `a`."""
    best = 0
    for k in range(len(a) + 1):
        for idx in itertools.combinations(range(len(a)), k):
            sub, it = [a[i] for i in idx], iter(b)
            if all(any(x == y for y in it) for x in sub):
                best = max(best, k)
    return best


def brute_alignment(pred: list[str], ref: list[str]) -> tuple[int, int]:
    """(matches, chunks) over every partial one-to-one map of equal tokens."""
    options = [[None, *(j for j, r in enumerate(ref) if r == p)] for p in pred]
    best = (0, 0)
    for choice in itertools.product(*options):
        used = [j for j in choice if j is not None]
        if len(used) != len(set(used)):
            continue
        chunks, prev = 0, None
        for j in choice:
            if j is not None and (prev is None or j != prev + 1):
                chunks += 1
            prev = j
        best = max(best, (len(used), -chunks))
    return best[0], -best[1]


def test_rouge_l_hand_computed() -> None:
    # LCS("a b x", "a b c d") = 2: precision 2/3, recall 1/2, F1 = 4/7
    assert rouge_l("a b x".split(), "a b c d".split()) == pytest.approx(4 / 7)
    assert rouge_l("c a".split(), "a b c".split()) == pytest.approx(2 * (1 / 2) * (1 / 3) / (5 / 6))


def test_rouge_l_edges() -> None:
    assert rouge_l([], []) == 1.0
    assert rouge_l([], ["a"]) == 0.0
    assert rouge_l(["a"], []) == 0.0
    assert rouge_l(["a", "b"], ["c"]) == 0.0
    assert rouge_l(["x", "(", ")"], ["x", "(", ")"]) == 1.0


@given(tokens, tokens)
def test_lcs_matches_brute_force(a: list[str], b: list[str]) -> None:
    assert lcs_length(a, b) == brute_lcs(a, b)


@given(tokens, tokens)
def test_rouge_l_symmetric_and_bounded(a: list[str], b: list[str]) -> None:
    assert rouge_l(a, b) == pytest.approx(rouge_l(b, a))
    assert 0.0 <= rouge_l(a, b) <= 1.0


def test_meteor_hand_computed() -> None:
    # identical, 4 tokens: Fmean 1, one chunk, penalty 0.5 * (1/4)^3
    assert meteor("a b c d".split(), "a b c d".split()) == pytest.approx(1 - 0.5 / 64)
    # reversed: 4 chunks of 1, penalty 0.5
    assert meteor("d c b a".split(), "a b c d".split()) == pytest.approx(0.5)
    # P = 2/3, R = 1/2: Fmean = PR / (0.9 P + 0.1 R) = (1/3) / 0.65; one chunk of 2
    expected = (1 / 3) / 0.65 * (1 - 0.5 * (1 / 2) ** 3)
    assert meteor("a b x".split(), "a b c d".split()) == pytest.approx(expected)


def test_meteor_prefers_fewest_chunks() -> None:
    # the second `a` could align too, but the first keeps `a b` one chunk
    assert meteor_alignment("a b a".split(), "a b".split()) == (2, 1)
    fmean = (2 / 3) / (0.9 * 2 / 3 + 0.1)
    assert meteor("a b a".split(), "a b".split()) == pytest.approx(fmean * (1 - 0.5 / 8))


def test_meteor_edges() -> None:
    assert meteor([], []) == 1.0
    assert meteor([], ["a"]) == 0.0
    assert meteor(["a"], []) == 0.0
    assert meteor(["a"], ["b"]) == 0.0
    assert meteor(["a"], ["a"]) == pytest.approx(0.5)  # one chunk per match: the full penalty


@given(tokens, tokens)
def test_meteor_alignment_matches_brute_force(pred: list[str], ref: list[str]) -> None:
    assert meteor_alignment(pred, ref) == brute_alignment(pred, ref)


@given(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=8), tokens)
def test_meteor_bounded_and_best_on_identity(ref: list[str], other: list[str]) -> None:
    identical = meteor(ref, ref)
    assert identical == pytest.approx(1 - 0.5 * (1 / len(ref)) ** 3)  # one chunk, even with repeats
    assert 0.0 <= meteor(other, ref) <= identical + 1e-12


def test_edit_sim_and_rank_metrics() -> None:
    assert edit_sim(" x = 1 ", "x = 1") == 100.0
    assert edit_sim("abcd", "abxx") == pytest.approx(50.0)
    m = rank_metrics([["a", "b"], ["c"], []], ["b", "c", "d"])
    assert m == pytest.approx({"top1": 1 / 3, "top5": 2 / 3, "mrr10": (1 / 2 + 1) / 3, "n": 3})
    assert rank_metrics([], []) == {"n": 0}


def test_lexical_tokens_and_statements() -> None:
    assert lex("x = 'a'\nif x:\n    y(1)\n") == [
        *("x", "=", "<str>", "<nl>", "if", "x", ":", "<nl>", "y", "(", "1", ")", "<nl>")
    ]
    assert context_tokens("x = 1\n    ") == ["x", "=", "1", "<nl>"]  # the statement ended
    assert context_tokens("x = 1\ny = ") == ["x", "=", "1", "<nl>", "y", "="]  # still open
    assert context_tokens("f(a,\n  ") == ["f", "(", "a", ","]
    assert first_statement("foo(a,\n  b)\nbar") == (["foo", "(", "a", ",", "b", ")"], True)
    assert first_statement("foo(a,") == (["foo", "(", "a", ","], False)


def test_file_copy_repeats_what_followed() -> None:
    assert file_copy("self.a = 1\nself.b = f(2)\nself.", 3) == ["b", "=", "f"]
    assert file_copy("x = 1\n", 3) == []


def test_line_tokens_are_what_the_text_adds_after_the_cursor() -> None:
    assert tokens_after("x = foo(", "a, b)") == ["a", ",", "b", ")"]
    assert tokens_after("if x:\n    y = ", "'s' + z") == ["<str>", "+", "z"]
    assert tokens_after("x = foo(", "a,  b )") == tokens_after("x = foo(", "a, b)")  # layout
    assert tokens_after("y = ", "") == []


def test_line_token_scores_and_table() -> None:
    m = line_token_scores([["a", "b"], ["a"]], [["a", "b"], ["a", "c"]])
    assert m == pytest.approx({"exact": 0.5, "edit_sim": (100 + edit_sim("a", "a c")) / 2, "n": 2})
    assert line_token_scores([], []) == {"n": 0}
    heads, truths = ["n = len(", "v = n + "], ["items)", "1"]
    table = line_table(
        heads, truths, {"engine": ["items)", "2"]}, {"echo": lambda head: ["items", ")"]}
    )
    assert table["engine"]["exact"] == 0.5 and table["echo"]["exact"] == 0.5
    assert table["engine"]["n"] == table["echo"]["n"] == 2


def test_ngram_token_accuracy_counts_every_token_but_statement_ends(tmp_path) -> None:
    import json

    text = "x = 1\ny = x + 1\nprint(y)\n"
    for split in ("train", "test"):
        row = {"package": "p", "path": "m.py", "text": text}
        (tmp_path / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    ngram = Ngram.from_corpus(tmp_path)
    acc = ngram_token_accuracy(ngram, tmp_path, n_files=5)
    assert acc["tokens"] == len([t for t in lex(text) if t != "<nl>"]) and acc["files"] == 1
    # trained on the file itself, the trigram knows each token after the first two
    assert acc["accuracy"] > 0.7 and acc["identifier_accuracy"] > 0.5
    assert ngram_token_accuracy(Ngram(), tmp_path)["accuracy"] == 0.0  # knows nothing


def test_statement_scores_per_n() -> None:
    samples = [StatementSample("", "", list("abcd")), StatementSample("", "", list("ab"))]
    out = score([list("abxx"), list("ab")], samples)
    assert out["2"] == {"rouge_l": 100.0, "meteor": pytest.approx(100 * (1 - 0.5 / 8)), "n": 2}
    assert out["4"]["n"] == 1
    assert out["4"]["rouge_l"] == pytest.approx(50.0)
    assert "5" not in out


@given(st.text(alphabet="ab_ (),.=1", min_size=0, max_size=30), st.integers(0, 2**32))
def test_span_in_ends_where_ghost_text_may(body: str, seed: int) -> None:
    span = span_in(body, random.Random(seed))
    if span is None:
        return
    a, b = span
    indent = len(body) - len(body.lstrip())
    assert indent < a < b <= len(body)
    assert body[a:b].strip()
    assert b == len(body) or not (body[b].isalnum() or body[b] == "_")
