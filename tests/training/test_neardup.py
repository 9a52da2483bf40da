"""Near-duplicate detection: MinHash estimates track exact Jaccard; edited copies are caught."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fillpoint.training.corpus import CorpusStats, accept
from fillpoint.training.neardup import NearDuplicateIndex, signature, similarity


def module(seed: int, n: int = 60) -> str:
    """A synthetic module of `n` distinct functions."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "total", "value", "items", "count", "name"]
    body = []
    for i in range(n):
        a, b = rng.sample(words, 2)
        body.append(
            f"def f_{seed}_{i}({a}, {b}):\n    return {a} * {i} + {b} - {rng.randint(0, 99)}\n"
        )
    return "\n".join(body)


def edited(text: str, every: int) -> str:
    """A copy with every `every`-th line changed and a new header."""
    lines = text.splitlines()
    lines = [
        line + "  # edited" if i % every else line.replace("return", "return -")
        for i, line in enumerate(lines)
    ]
    return '"""Vendored copy."""\n' + "\n".join(lines)


def test_an_edited_copy_is_a_near_duplicate_and_an_unrelated_file_is_not() -> None:
    original, other = module(1), module(2)
    index = NearDuplicateIndex()
    assert index.add(original)
    assert not index.add(edited(original, every=20))  # a few lines and a header changed
    assert index.add(other)
    assert similarity(original, other) < 0.2


def test_comments_and_layout_do_not_change_the_signature() -> None:
    text = module(3)
    noisy = "\n\n".join(line + "   # note" for line in text.splitlines())
    assert (signature(text) == signature(noisy)).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12))
def test_minhash_estimate_is_close_to_exact_jaccard(seed: int, every: int) -> None:
    a = module(seed)
    b = edited(a, every)
    estimate = float((signature(a) == signature(b)).mean())
    assert abs(estimate - similarity(a, b)) < 0.2  # 128 permutations: standard error < 0.045


def test_the_corpus_filter_counts_near_duplicates() -> None:
    stats, seen, near = CorpusStats(), set(), NearDuplicateIndex()
    original = module(4).encode()
    assert accept(original, stats, seen, near) is not None
    assert accept(edited(module(4), every=25).encode(), stats, seen, near) is None
    assert stats.skipped["near duplicate"] == 1
    assert accept(module(5).encode(), stats, seen, near) is not None
