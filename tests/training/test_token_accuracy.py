"""Token-level accuracy under CodeXGLUE's rules, on hand-made pieces and predictions."""

from __future__ import annotations

import pytest

from fillpoint.training.eval_ngram import END, lex
from fillpoint.training.token_accuracy import score_tokens

PIECES = ["x", " =", " f", '("', "a", " b", '")', "  #", " hi", "\n", "y", ":", "'", "z", "'", "\n"]
TEXT = "".join(PIECES)  # x = f("a b")  # hi\ny:'z'\n


def _offsets(pieces: list[str]) -> list[tuple[int, int]]:
    out, at = [], 0
    for p in pieces:
        out.append((at, at + len(p)))
        at += len(p)
    return out


def _score(preds: list[str]) -> list[tuple[str, bool, bool | None]]:
    """Score predicted piece texts against PIECES (a piece's id is its index in the vocab)."""
    vocab = list(dict.fromkeys([*PIECES, *preds]))
    ids = [vocab.index(p) for p in PIECES]
    return score_tokens(TEXT, ids, _offsets(PIECES), [vocab.index(p) for p in preds], vocab)


def _with(**wrong: str) -> list[str]:
    """PIECES with the pieces at the given indices (`p3="..."`) replaced."""
    preds = list(PIECES)
    for key, text in wrong.items():
        preds[int(key[1:])] = text
    return preds


def test_all_right_scores_every_token_and_leaves_comments_to_the_exact_count() -> None:
    scores = _score(list(PIECES))
    kinds = [k for k, _, _ in scores]
    assert kinds == ["identifier", "op", "identifier", "op", "string", "op", "comment",
                     "identifier", "op", "string"]  # fmt: skip
    assert all(exact for _, exact, _ in scores)
    assert [glue for _, _, glue in scores] == [True] * 6 + [None] + [True] * 3


def test_string_content_is_not_scored_but_its_opening_is() -> None:
    scores = _score(_with(p4="q"))  # wrong content of "a b"
    assert scores[4] == ("string", False, True)
    scores = _score(_with(p12='"'))  # other quote for 'z': still a string
    assert scores[9] == ("string", False, True)
    scores = _score(_with(p12="z"))  # a name where the string opens
    assert scores[9] == ("string", False, False)


def test_a_piece_shared_by_two_tokens_counts_for_both() -> None:
    # '("' holds "(" and the literal's quote: a wrong "(" piece fails both
    scores = _score(_with(p3="("))
    assert scores[3][1:] == (False, False)
    assert scores[4] == ("string", False, False)
    # '")' closes the literal and holds ")": ")" is wrong, the literal still opened right
    scores = _score(_with(p6='"'))
    assert scores[5][1:] == (False, False)
    assert scores[4][2] is True


@pytest.mark.parametrize(
    "text",
    [
        TEXT,
        'def f(a, *b, **c):\n    """Doc."""\n    return a[1:] + b"x"  # end\n',
        "class A(B):\n    x: int = 0x1F\n\n    def g(self):\n        pass\n",
    ],
)
def test_scores_the_tokens_the_trigram_predicts(text: str) -> None:
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]  # any tiling of the text
    ids = list(range(len(pieces)))
    scores = score_tokens(text, ids, _offsets(pieces), ids, pieces)
    assert sum(glue is not None for _, _, glue in scores) == sum(t != END for t in lex(text))
    assert all(glue is not False for _, _, glue in scores)
