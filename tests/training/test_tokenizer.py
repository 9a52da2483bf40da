"""Tokenizer: FIM special tokens, code-aware pre-tokens, lossless byte-level round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from fillpoint.training.tokenizer import (
    SPECIAL_TOKENS,
    chars_per_token,
    new_tokenizer,
    sample_texts,
)

FRAGMENTS = [
    "def ",
    "__init__",
    "(self, ",
    "max_items",
    "):\n",
    "    ",
    "\t",
    "return ",
    "x := 1",
    " = ",
    "'''doc'''",
    'f"{x!r:>10}"',
    "# comment\n",
    "\r\n",
    "\n\n",
    "λ = 2",
    "naïve",
    "変数",
    "😀",
    "\x00",
    "0x1F",
    "...",
    "@decorator",
]
CODE = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=30).map("".join)


def pretokens(text: str) -> list[str]:
    """The pre-tokens of `text` as text (the byte-level step's visible alphabet undone)."""
    return [text[a:b] for _, (a, b) in new_tokenizer().pre_tokenizer.pre_tokenize_str(text)]


def test_special_tokens_have_fixed_ids(tokenizer: Tokenizer) -> None:
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert SPECIAL_TOKENS[2:] == ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
    assert tokenizer.get_vocab_size() == 512


def test_special_tokens_are_encoded_whole_and_dropped_on_decode(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("<fim_prefix>x = 1<fim_suffix>\n<fim_middle>").ids
    assert [i for i in ids if i < 5] == [2, 3, 4]
    assert tokenizer.decode(ids) == "x = 1\n"


def test_saved_tokenizer_has_the_code_pre_tokenizer(tokenizer_path: Path) -> None:
    spec = json.loads(tokenizer_path.read_text())
    assert spec["model"]["type"] == "BPE"
    assert [t["content"] for t in spec["added_tokens"]] == SPECIAL_TOKENS
    assert all(t["special"] for t in spec["added_tokens"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("def __init__(self):", ["def", " __init__", "(", "self", "):"]),
        ("max_items = _x1", ["max_items", " =", " _x1"]),
        ("return naïve_λ", ["return", " naïve_λ"]),
        ("x  = 10", ["x", " ", " =", " 10"]),
        ("):\n        return", ["):", "\n       ", " return"]),
    ],
)
def test_identifiers_stay_one_pre_token(text: str, expected: list[str]) -> None:
    assert pretokens(text) == expected


@settings(max_examples=150, deadline=None)
@given(CODE)
def test_pieces_never_cross_pre_tokens(tokenizer: Tokenizer, text: str) -> None:
    bounds = set()
    pos = 0
    for tok in pretokens(text):
        pos += len(tok)
        bounds.add(pos)
    for a, b in tokenizer.encode(text).offsets:
        assert not any(a < x < b for x in bounds)


@settings(max_examples=200, deadline=None)
@given(CODE)
def test_decode_inverts_encode(tokenizer: Tokenizer, text: str) -> None:
    enc = tokenizer.encode(text)
    assert tokenizer.decode(enc.ids) == text
    assert all(i >= len(SPECIAL_TOKENS) for i in enc.ids)


def test_trained_tokenizer_compresses_code(tokenizer: Tokenizer, small_corpus: Path) -> None:
    texts = list(sample_texts(small_corpus, 20_000))
    assert chars_per_token(tokenizer, texts) > 2.0
    assert chars_per_token(tokenizer, []) == 0.0


def test_sample_texts_is_seeded_and_bounded(small_corpus: Path) -> None:
    a = list(sample_texts(small_corpus, 30_000, seed=1))
    assert a == list(sample_texts(small_corpus, 30_000, seed=1))
    assert a != list(sample_texts(small_corpus, 30_000, seed=2))
    # stops after the first text that reaches the budget
    assert sum(map(len, a[:-1])) < 30_000 <= sum(map(len, a))
