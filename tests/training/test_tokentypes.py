"""Token types: one lexical type per BPE piece, exact operator names, robust to broken code."""

from __future__ import annotations

import token

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from fillpoint.training.tokentypes import (
    N_TYPES,
    STRUCTURAL,
    TYPE_ID,
    TYPE_NAMES,
    WS,
    char_types,
    piece_types,
)

SELF_X_TYPES = "NAME DOT NAME EQUAL NUMBER".split()  # self . x = 1
CODE = st.lists(
    st.sampled_from(
        ["x", " = ", "1", "(", ")", ":", "\n", "    ", "def f", "'s'", '"""', "#c", "if ", "\\"]
    )
    | st.text(max_size=5),
    max_size=25,
).map("".join)


def names(types: np.ndarray) -> list[str]:
    """Type ids as names."""
    return [TYPE_NAMES[t] for t in types]


def ref_piece_types(char_type: np.ndarray, offsets: list[tuple[int, int]]) -> list[int]:
    """Reference: the type of the first non-whitespace character inside each piece, else WS."""
    out = []
    for a, b in offsets:
        inside = [int(t) for t in char_type[a:b] if t != WS]
        out.append(inside[0] if inside else WS)
    return out


def typed_pieces(tokenizer: Tokenizer, text: str) -> list[tuple[str, str]]:
    """(piece text, type name) for each BPE piece of `text`."""
    enc = tokenizer.encode(text)
    offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
    types = piece_types(char_types(text), offsets)
    assert len(types) == len(enc.ids)
    return [(text[a:b], TYPE_NAMES[t]) for (a, b), t in zip(enc.offsets, types, strict=True)]


def test_type_table_fits_uint8_and_names_every_exact_operator() -> None:
    assert len(set(TYPE_NAMES)) == N_TYPES < 256
    assert TYPE_ID["PAD"] == 0
    for op in token.EXACT_TOKEN_TYPES.values():
        assert token.tok_name[op] in TYPE_ID
    assert {"COLONEQUAL", "DOT", "LPAR", "PLUSEQUAL", "RARROW"} <= set(TYPE_NAMES)
    assert TYPE_ID["NAME"] not in STRUCTURAL and TYPE_ID["INDENT"] in STRUCTURAL


def test_assignment_to_attribute_with_hand_made_pieces() -> None:
    text = "self.x = 1"
    offsets = np.array([(0, 4), (4, 5), (5, 6), (6, 8), (8, 10)])
    assert names(piece_types(char_types(text), offsets)) == SELF_X_TYPES


def test_assignment_to_attribute_with_trained_pieces(tokenizer: Tokenizer) -> None:
    pieces = typed_pieces(tokenizer, "self.x = 1\n")
    assert "".join(p for p, _ in pieces) == "self.x = 1\n"
    assert [t for p, t in pieces if p.strip()] == SELF_X_TYPES
    assert all(t in ("WS", "NEWLINE") for p, t in pieces if not p.strip())


def type_at(text: str, sub: str) -> str:
    """The type name of the first character of the first `sub` in `text`."""
    return TYPE_NAMES[char_types(text)[text.index(sub)]]


@pytest.mark.parametrize(
    ("sub", "expected"),
    [
        ("if", "KEYWORD"),
        ("x", "NAME"),
        ("is", "KEYWORD"),
        ("None", "KEYWORD"),
        (":", "COLON"),
        ("pass", "KEYWORD"),
        ("match", "NAME"),  # a soft keyword is an ordinary name outside match statements
        ("lambda", "KEYWORD"),
        ("yield_", "NAME"),
        ("0.5", "NUMBER"),
    ],
)
def test_keywords_and_names(sub: str, expected: str) -> None:
    assert type_at("if x is None:\n    pass\nmatch = lambda: yield_ + 0.5\n", sub) == expected


def test_walrus_and_other_multi_character_operators() -> None:
    text = "if (n := f(a)) >= 5: x **= 2; y -> z\n"
    ct = char_types(text)
    assert names(ct[text.index(":=") : text.index(":=") + 2]) == ["COLONEQUAL"] * 2
    assert TYPE_NAMES[ct[text.index(">=")]] == "GREATEREQUAL"
    assert TYPE_NAMES[ct[text.index("**=")]] == "DOUBLESTAREQUAL"
    assert TYPE_NAMES[ct[text.index("->")]] == "RARROW"


def test_walrus_pieces_from_the_trained_tokenizer(tokenizer: Tokenizer) -> None:
    text = "while (line := read()):\n"
    walrus = text.index(":=")
    enc = tokenizer.encode(text)
    types = piece_types(char_types(text), np.asarray(enc.offsets, dtype=np.int64))
    got = []
    for (a, b), t in zip(enc.offsets, types, strict=True):
        first = a + len(text[a:b]) - len(text[a:b].lstrip())
        if text[a:b].strip() and walrus <= first < walrus + 2:
            got.append(TYPE_NAMES[t])
    assert got and set(got) == {"COLONEQUAL"}


def test_layout_tokens_and_strings() -> None:
    text = 'def f():\n    """Doc."""\n    return 1  # done\n'
    ct = char_types(text)
    assert names(ct[9:13]) == ["INDENT"] * 4
    assert set(names(ct[13:23])) == {"STRING"}
    assert TYPE_NAMES[ct[text.index("# done")]] == "COMMENT"
    assert TYPE_NAMES[ct[8]] == "NEWLINE"
    assert TYPE_NAMES[ct[text.index("return") - 1]] == "WS"


def test_unknown_characters_are_error_tokens() -> None:
    # tokenize reports `¼` as an OP whose exact type is OP, which has no entry of its own
    assert type_at("x = ¼ + 1\n", "¼") == "ERRORTOKEN"
    assert type_at("x = ¼ + 1\n", "+") == "PLUS"


def test_form_feed_and_unicode_line_separators_do_not_shift_types() -> None:
    # str.splitlines() splits at \x0c and \u2028; tokenize does not.
    text = "a = 1\n\x0c\nb = 's\u2028t'\nc = 2\n"
    ct = char_types(text)
    assert TYPE_NAMES[ct[text.index("b")]] == "NAME"
    assert TYPE_NAMES[ct[text.index("c")]] == "NAME"
    assert TYPE_NAMES[ct[text.index("2")]] == "NUMBER"


@pytest.mark.parametrize(
    "text",
    [
        "def f(:\n    '''never closed",
        "x = (1,\n  2",
        "if x:\n        y = 1\n    z = 2\n",  # dedent to a level that never existed
        "s = 'abc\nt = 1\n",
        "print 'py2'\n",
        "\x00\x01 $ ? `",
        "",
    ],
)
def test_broken_code_keeps_the_typed_prefix_and_does_not_raise(text: str) -> None:
    ct = char_types(text)
    assert ct.shape == (len(text),) and ct.dtype == np.uint8
    if text[:1].isalpha():
        assert TYPE_NAMES[ct[0]] in ("NAME", "KEYWORD")


@settings(max_examples=300, deadline=None)
@given(CODE)
def test_any_text_gets_one_type_per_character(text: str) -> None:
    ct = char_types(text)
    assert ct.shape == (len(text),)
    assert ct.max(initial=0) < N_TYPES


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, N_TYPES - 1), max_size=40).flatmap(
        lambda types: st.tuples(
            st.just(types),
            st.lists(st.tuples(st.integers(0, len(types) + 2), st.integers(0, 4)), max_size=20),
        )
    )
)
def test_piece_types_matches_the_reference(case: tuple[list[int], list[tuple[int, int]]]) -> None:
    types, spans = case
    char_type = np.asarray(types, dtype=np.uint8)
    offsets = [(a, min(a + n, len(types))) for a, n in spans]
    offsets = [(min(a, b), b) for a, b in offsets]
    arr = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    assert piece_types(char_type, arr).tolist() == ref_piece_types(char_type, offsets)


@settings(max_examples=100, deadline=None)
@given(CODE)
def test_types_align_with_trained_pieces(tokenizer: Tokenizer, text: str) -> None:
    enc = tokenizer.encode(text)
    offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
    ct = char_types(text)
    types = piece_types(ct, offsets)
    assert len(types) == len(enc.ids)
    assert types.tolist() == ref_piece_types(ct, enc.offsets)
