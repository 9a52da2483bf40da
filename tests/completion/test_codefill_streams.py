"""CodeFill streams: alignment, identifier roles, literals, and prompts that end at a cursor."""

from __future__ import annotations

from fillpoint.completion.codefill_streams import (
    DEDENT,
    EOS,
    INDENT,
    N_TYPES,
    NUM,
    STR,
    TYPE_ID,
    TYPE_NAMES,
    Vocab,
    streams,
)

SAMPLE = '''import os.path as osp
from collections import OrderedDict as OD, deque


class Point(Base):
    """A point."""

    def __init__(self, x, y=1, *args, **kw):
        self.x = x  # a comment
        self.y += norm(y, scale=2.5)
        v = self.move(f"{x}", b"raw")
        return [i for i in v if i.ok]
'''


def roles(text: str) -> dict[str, list[str]]:
    """Every type each name takes in `text`."""
    out: dict[str, list[str]] = {}
    for name, typ in zip(*streams(text), strict=True):
        out.setdefault(name, []).append(typ)
    return out


def test_streams_are_aligned_and_drop_comments() -> None:
    names, types = streams(SAMPLE)
    assert len(names) == len(types) > 50
    assert all(t in TYPE_ID for t in types)
    assert "#" not in "".join(names) and "comment" not in names
    assert 60 <= N_TYPES <= 110 and len(set(TYPE_NAMES)) == N_TYPES


def test_identifier_roles() -> None:
    r = roles(SAMPLE)
    assert r["os"] == ["IMPORT_MODULE"] and r["osp"] == ["IMPORT_ALIAS"]
    assert r["OrderedDict"] == ["IMPORT_NAME"] and r["OD"] == ["IMPORT_ALIAS"]
    assert r["Point"] == ["CLASS_DEF"] and r["__init__"] == ["FUNCTION_DEF"]
    assert r["args"] == ["PARAMETER"] and r["kw"] == ["PARAMETER"]
    assert r["x"] == ["PARAMETER", "ATTRIBUTE_STORE", "VARIABLE"]  # not inside the f-string
    assert r["self"] == ["PARAMETER", "SELF", "SELF", "SELF"]
    assert r["norm"] == ["CALL"] and r["move"] == ["METHOD_CALL"] and r["ok"] == ["ATTRIBUTE"]
    assert r["scale"] == ["KEYWORD_ARG"] and r["v"] == ["VARIABLE_STORE", "VARIABLE"]
    assert r["i"] == ["VARIABLE", "VARIABLE_STORE", "VARIABLE"]
    assert r["return"] == ["KW_return"] and r["+="] == ["AUGASSIGN"] and r["."][0] == "DOT"


def test_literals_are_abstracted_and_statements_end_in_eos() -> None:
    r = roles(SAMPLE)
    assert r[STR] == ["DOCSTRING"] and r["<FSTR>"] == ["FSTRING"] and r["<BYTES>"] == ["BYTES"]
    assert r[NUM] == ["NUMBER", "NUMBER"]
    names, _ = streams("x = 1\nif x:\n    y = 'a'\n")
    assert names == ["x", "=", NUM, EOS, "if", "x", ":", EOS, "<INDENT>", "y", "=", STR, EOS,
                     "<DEDENT>"]  # fmt: skip


def test_non_ascii_columns_and_half_written_code() -> None:
    assert roles("s = 'é'; s.upper()\n")["upper"] == ["METHOD_CALL"]
    names, types = streams("def f(a):\n    return g(a.b, ")
    assert names[-4:] == ["(", "a", ".", "b"] or names[-5:-1] == ["(", "a", ".", "b"]
    assert types[names.index("g")] == "CALL" and len(names) == len(types)


def test_prefix_mode_leaves_out_what_tokenize_makes_up_at_the_end() -> None:
    assert streams("x = foo", prefix=True)[0] == ["x", "=", "foo"]
    assert streams("x = foo")[0] == ["x", "=", "foo", EOS]
    names, _ = streams("def f(a):\n    return a\n", prefix=True)
    assert names[-3:] == ["a", EOS, DEDENT]  # at column 0 the body has ended


def test_prefix_mode_indents_a_blank_cursor_line_by_its_column() -> None:
    body = "class A:\n    def f(self):\n        pass\n"
    assert streams(body + "        ", prefix=True)[0][-2:] == ["pass", EOS]
    assert streams(body + "    ", prefix=True)[0][-3:] == ["pass", EOS, DEDENT]
    assert streams(body, prefix=True)[0][-4:] == ["pass", EOS, DEDENT, DEDENT]
    assert streams("if x:\n    ", prefix=True)[0][-2:] == [EOS, INDENT]
    names, types = streams("if x:\n    y = 1\n\n    # note\n    ", prefix=True)
    assert names[-2:] == [NUM, EOS] and len(names) == len(types)


def test_vocab_round_trip(tmp_path) -> None:
    vocab = Vocab(["<pad>", "<unk>", "self", "x"])
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocab.from_file(tmp_path / "vocab.json")
    assert loaded.encode(["self", "nope", "x"]) == [2, 1, 3]
    assert loaded.decode([3, 2]) == ["x", "self"] and loaded.n_vocab == 4
