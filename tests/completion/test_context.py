"""Context: windows, the typed identifier, strings and comments, cardinal points, scopes."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_sitter import Query, QueryCursor

from fillpoint.completion import declarations as decl_module
from fillpoint.completion.context import Context, build_context
from fillpoint.completion.declarations import Declaration, identifier_counts
from fillpoint.completion.documents import PYTHON, Document
from fillpoint.completion.types import Position, Span


def at(marked: str, encoding: str = "utf-16") -> Context:
    """The context at the `|` in `marked` (the bar is removed from the text)."""
    i = marked.index("|")
    doc = Document("file:///t.py", marked[:i] + marked[i + 1 :], encoding=encoding)  # type: ignore[arg-type]
    return build_context(doc, doc.position_at(i))


@pytest.mark.parametrize(
    ("marked", "inside"),
    [
        ('x = "ab|c"', True),
        ('x = "abc"|', False),  # just after the closing quote
        ('x = |"abc"', False),
        ('x = "|abc"', True),  # just after the opening quote
        ("s = b'|'", True),
        ('x = r"\\d|"', True),
        ('x = """ab\n c|\n"""', True),
        ("'''doc'''|", False),
        ("# hi|", True),
        ("x = 1 # hi|\ny", True),
        ("x = 1 |# hi", False),
        ("x = 1  # c\n|", False),
        ('f"{x|}"', False),  # inside the interpolation: code
        ('f"{|}"', False),
        ('f"{x}|"', True),
        ('f"a|{x}"', True),
        ("f\"{d['k|']}\"", True),  # a string inside an interpolation
        ('print("hello wor|', True),  # a string being typed: no closing quote yet
        ('print("hello wor|\nx = 1', True),
        ('x = "abc\ny = 1|', False),  # an unclosed one-line string ends at its line
        ('x = "abc\\\n  de|', True),  # ... unless the line break is escaped
        ('x = """abc\n def|', True),
        ('print(f"a {x|', False),
        ('print(f"a {x} b|', True),
        ("x = f\"{d['k|", True),
        ("|", False),
        ("x = 1|", False),
    ],
)
def test_in_string_or_comment(marked: str, inside: bool) -> None:
    assert at(marked).in_string_or_comment is inside


@pytest.mark.parametrize(
    ("marked", "partial", "after_dot", "cardinal"),
    [
        ("foo.ba|r", "ba", True, True),
        ("foo.|", "", True, True),
        ("foo . |", "", True, True),
        ("x == y.|", "", True, True),
        ("(a).|", "", True, True),
        ("None.|", "", True, True),
        ("x = 1.|", "", False, False),  # a float, not an attribute
        ("...|", "", False, False),
        ("from . imp|", "imp", False, False),
        ("return fo|", "fo", False, True),
        ("yield|", "yield", False, True),  # start of statement: the keyword is the partial
        ("x = (a +|", "", False, True),
        ("x = (a + b|", "b", False, True),
        ("x[1:|", "", False, True),
        ("if x an|", "an", False, False),
        ("if x and |", "", False, True),
        ("a if b else |", "", False, True),
        ("foo() |", "", False, False),
        ("x = 12|", "", False, False),  # a number: not an identifier, not a cardinal point
        ("x = 0x1f|", "", False, False),
        ("   |", "", False, True),
        ("    pri|", "pri", False, True),
        ("x = 1; |", "", False, True),
        ("x += |", "", False, True),
        ("lambda q: |", "", False, True),
        ("@|", "", False, True),
        ("x = naïv|", "naïv", False, True),
        ("变量 = 变|", "变", False, True),
        ("x = foo|bar", "foo", False, True),
    ],
)
def test_partial_dot_cardinal(marked: str, partial: str, after_dot: bool, cardinal: bool) -> None:
    ctx = at(marked)
    assert (ctx.partial, ctx.after_dot, ctx.cardinal) == (partial, after_dot, cardinal)


def test_partial_start_and_line_parts_outside_bmp() -> None:
    ctx = at("s = '😀'; x.na|me\nnext")
    assert ctx.partial == "na"
    assert ctx.partial_start == Position(0, 12)  # the emoji takes two UTF-16 units
    assert ctx.position == Position(0, 14)
    assert (ctx.line_prefix, ctx.line_suffix) == ("s = '😀'; x.na", "me")
    assert at("s = '😀'; x.na|me", encoding="utf-32").partial_start == Position(0, 11)


def test_windows_cut_at_line_boundaries() -> None:
    lines = [f"line_{i} = {i}" for i in range(100)]
    text = "\r\n".join(lines)
    doc = Document("u", text)
    offset = text.index("line_50") + 4
    ctx = build_context(doc, doc.position_at(offset), prefix_chars=100, suffix_chars=60)
    assert text[:offset].endswith(ctx.prefix) and len(ctx.prefix) <= 100
    assert ctx.prefix.startswith("line_") and text[offset - len(ctx.prefix) - 1] == "\n"
    assert text[offset:].startswith(ctx.suffix) and len(ctx.suffix) <= 61
    assert ctx.suffix.endswith("\r\n")
    one_line = Document("u", "x" * 500)
    ctx = build_context(one_line, Position(0, 400), prefix_chars=100, suffix_chars=10)
    assert 100 - 100 // 3 <= len(ctx.prefix) <= 100 and len(ctx.suffix) == 10
    assert build_context(doc, Position(3, 2), prefix_chars=0, suffix_chars=0).prefix == ""


def test_prefix_window_start_stays_put_while_typing() -> None:
    text = "".join(f"name_{i} = value_{i}\n" for i in range(200))
    starts = []
    for offset in range(3000, 3400):
        doc = Document("u", text[:offset])
        prefix = build_context(doc, doc.position_at(offset), prefix_chars=900).prefix
        assert len(prefix) <= 900 and text[:offset].endswith(prefix)
        assert prefix.startswith("name_")  # at a line start
        starts.append(offset - len(prefix))
    # it moves a third of its budget at a time (300 characters), not with every line (about
    # 20 moves in these 400 characters)
    assert len(set(starts)) <= 3


def test_position_clamped_into_the_document() -> None:
    doc = Document("u", "ab\ncd")
    ctx = build_context(doc, Position(7, 9))
    assert ctx.position == Position(1, 2) and ctx.offset == 5 and ctx.partial == "cd"
    ctx = build_context(doc, Position(0, 99))
    assert ctx.position == Position(0, 2) and ctx.line_suffix == ""


def test_identifiers_exclude_the_token_being_typed() -> None:
    ctx = at("import os\nos.path.join(os.sep)\nfoo = os.pa|")
    assert ctx.identifiers["os"] == 4
    assert ctx.identifiers["path"] == 1  # the typed `pa` is not counted
    assert "pa" not in ctx.identifiers
    assert at("value = 1\nprint(valu|e)").identifiers == {"value": 1, "print": 1}
    assert "print" not in at("x = 1\n# print(x)\ns = 'print'|").identifiers


SHAPES = """import os
from m import n as alias
TOP = 1

def helper(a, b=2):
    inner = a
    return inner

class Shape:
    sides = 3

    def __init__(self, w):
        self.width = w
        local = 1

    def area(self, scale):
        total = self.width * scale
        def nested(q):
            deep = q
        |

class Other:
    def m(self):
        self.other_attr = 1
"""


def test_scopes_in_a_method() -> None:
    scopes = at(SHAPES).scopes
    assert scopes["scale"] == Declaration("variable", "function")
    assert scopes["total"] == Declaration("variable", "function")
    assert scopes["nested"] == Declaration("function", "function")
    assert scopes["self"] == Declaration("variable", "function")
    assert scopes["width"] == Declaration("attribute", "class")
    assert scopes["sides"] == Declaration("attribute", "class")
    assert scopes["area"] == Declaration("function", "class")
    assert scopes["__init__"] == Declaration("function", "class")
    assert scopes["helper"] == Declaration("function", "file")
    assert scopes["Shape"] == Declaration("function", "file")
    assert scopes["TOP"] == Declaration("variable", "file")
    assert scopes["os"] == Declaration("variable", "file")
    assert scopes["alias"] == Declaration("variable", "file")
    assert scopes["deep"] == Declaration("variable", "file")  # local to another function
    assert scopes["local"] == Declaration("variable", "file")
    assert scopes["other_attr"] == Declaration("attribute", "file")  # another class
    assert "n" not in scopes  # imported under another name


def test_scopes_follow_indentation_after_a_block_ends() -> None:
    in_class = at(SHAPES.replace("        |", "    |")).scopes
    assert in_class["area"].where == "class" and in_class["scale"].where == "file"
    at_top = at(SHAPES.replace("        |", "|")).scopes
    assert {d.where for d in at_top.values()} == {"file"}


def test_scopes_skip_the_name_being_typed() -> None:
    scopes = at("def f():\n    x = 1\n    tot|al = 2\n").scopes
    assert "total" not in scopes and scopes["x"].where == "function"
    assert at("def f(alpha):\n    return alph|").scopes["alpha"].where == "function"


def test_edit_recomputes_only_the_touched_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = Document("u", SHAPES.replace("|", "pass"))
    build_context(doc, Position(0, 0))
    calls: list[int] = []
    real = decl_module._facts
    monkeypatch.setattr(decl_module, "_facts", lambda *a: calls.append(1) or real(*a))
    doc.apply_change("x = total", Span(Position(19, 8), Position(19, 12)))
    ctx = build_context(doc, Position(19, 17))
    assert len(calls) == 1  # the `area` method
    assert ctx.scopes["total"].where == "function"


IDENTIFIER = Query(PYTHON, "(identifier) @id")


def fresh_counts(doc: Document) -> Counter[str]:
    """Reference: count the identifier nodes of the whole tree."""
    nodes = QueryCursor(IDENTIFIER).captures(doc.tree.root_node).get("id", [])
    return Counter(
        doc.source[n.start_byte : n.end_byte].decode() for n in nodes if not n.is_missing
    )


PIECES = st.sampled_from(
    [
        "x", "self", "obj", " ", "    ", "\n", "\r\n", "\r", "\x00", "😀", "é", "\ud800",
        "(", ")", "[", "]", "{", "}", ":", ".", ",", "=", '"', "'", '"""', "#", "\\",
        "def f(a):\n", "class C:\n", "    self.y = 1\n", "if ", "return ", "f'{x}'", "import os",
    ]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    text=st.lists(PIECES, max_size=40).map("".join),
    edits=st.lists(
        st.tuples(st.integers(0, 10), st.integers(0, 20), st.lists(PIECES, max_size=4)),
        max_size=5,
    ),
    line=st.integers(-2, 12),
    character=st.integers(-2, 30),
)
def test_never_raises_and_stays_consistent(
    text: str, edits: list[tuple[int, int, list[str]]], line: int, character: int
) -> None:
    doc = Document("u", text)
    build_context(doc, Position(line, character))
    for l1, c1, insert in edits:
        doc.apply_change("".join(insert), Span(Position(l1, c1), Position(l1, c1 + 2)))
        ctx = build_context(doc, Position(line, character))
        assert doc.text[: ctx.offset].endswith(ctx.prefix)
        assert doc.text[ctx.offset :].startswith(ctx.suffix)
        assert ctx.line_prefix.endswith(ctx.partial)
        assert doc.offset_at(ctx.partial_start) == ctx.offset - len(ctx.partial)
        assert all(n > 0 for n in ctx.identifiers.values())
        # Facts reused from earlier versions' pieces equal a fresh count of the whole tree.
        assert identifier_counts(doc) == dict(fresh_counts(doc))


def test_identifier_counts_follow_document_order() -> None:
    """The counts' order breaks ties between equally frequent names in the list, so it must
    not depend on how the tree-sitter bindings happen to return a capture's nodes."""
    text = "import zeta, alpha\nfrom mu import nu\n\ndef omega(beta, gamma):\n    return zeta\n"
    names = ["zeta", "alpha", "mu", "nu", "omega", "beta", "gamma"]
    assert list(identifier_counts(Document("u", text))) == names
