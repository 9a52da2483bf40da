"""Documents: position conversion, incremental edits and re-parsing, the thread-safe store."""

from __future__ import annotations

import re
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tree_sitter import Node, Parser, Tree

from fillpoint.completion.documents import PYTHON, Document, DocumentStore
from fillpoint.completion.types import EngineError, Position, Span


def dump(tree: Tree) -> list[tuple]:
    """Every node with its type, byte range and points, in document order."""
    out: list[tuple] = []
    stack: list[Node] = [tree.root_node]
    while stack:
        node = stack.pop()
        out.append(
            (node.type, node.start_byte, node.end_byte, node.start_point, node.end_point)
            + (node.is_missing,)
        )
        stack.extend(reversed(node.children))
    return out


def fresh(text: str) -> Tree:
    """A from-scratch parse of the text, as Document encodes it."""
    return Parser(PYTHON).parse(Document("x", text).source)


def ref_lines(text: str) -> list[str]:
    """Reference: LSP lines (content without the break), split at \\r\\n, \\r or \\n."""
    return re.split(r"\r\n|\r|\n", text)


def ref_units(ch: str, encoding: str) -> int:
    """Reference: the units of one character in an LSP position encoding."""
    if encoding == "utf-8":
        return len(ch.encode("utf-8", "surrogatepass"))
    return 2 if encoding == "utf-16" and ord(ch) > 0xFFFF else 1


def ref_offset(text: str, pos: Position, encoding: str) -> int:
    """Reference: walk the text character by character to an LSP position, clamping."""
    lines = ref_lines(text)
    if pos.line >= len(lines):
        return len(text)
    line = max(pos.line, 0)
    offset = 0
    for i in range(line):
        offset += len(lines[i])
        offset += 2 if text.startswith("\r\n", offset) else 1
    units = 0
    for i, ch in enumerate(lines[line]):
        units += ref_units(ch, encoding)
        if units > pos.character:
            return offset + i
    return offset + len(lines[line])


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_positions_round_trip_outside_bmp(encoding: str) -> None:
    text = "a😀b\r\nc\u00e9\rd\n"
    doc = Document("file:///t.py", text, encoding=encoding)  # type: ignore[arg-type]
    units = {"utf-8": 4, "utf-16": 2, "utf-32": 1}[encoding]
    assert doc.offset_at(Position(0, 1 + units)) == 2
    assert doc.position_at(2) == Position(0, 1 + units)
    assert doc.offset_at(Position(0, 1000)) == 3  # clamps to the end of the line, before \r\n
    assert doc.position_at(4) == Position(0, 2 + units)  # between \r and \n: line end
    assert doc.offset_at(Position(1, 1)) == 6
    assert doc.line_text(1) == "c\u00e9"
    assert doc.offset_at(Position(2, 0)) == 8
    assert doc.offset_at(Position(3, 0)) == len(text)  # the empty last line
    assert doc.offset_at(Position(99, 5)) == len(text)
    assert doc.line_count == 4


def test_position_inside_surrogate_pair_rounds_down() -> None:
    doc = Document("u", "😀x")
    assert doc.offset_at(Position(0, 1)) == 0
    assert doc.offset_at(Position(0, 2)) == 1


def test_lone_surrogates_and_nul() -> None:
    text = "x = '\ud800'\x00\ny = 1"
    doc = Document("u", text)
    assert doc.tree.root_node.end_byte == len(doc.source)
    assert doc.offset_at(Position(0, 6)) == 6
    assert doc.byte_offset_at(6) == 8  # the surrogate takes 3 bytes, like U+FFFD
    assert doc.offset_at_byte(8) == 6
    doc.apply_change("z", Span(Position(1, 0), Position(1, 1)))
    assert doc.text == "x = '\ud800'\x00\nz = 1"
    assert dump(doc.tree) == dump(fresh(doc.text))


def test_empty_document() -> None:
    doc = Document("u", "")
    assert doc.offset_at(Position(0, 0)) == 0
    assert doc.offset_at(Position(3, 3)) == 0
    assert doc.position_at(10) == Position(0, 0)
    assert doc.line_text(0) == "" and doc.line_text(5) == ""
    doc.apply_change("import os\n", Span(Position(0, 0), Position(0, 0)))
    assert doc.text == "import os\n"
    assert dump(doc.tree) == dump(fresh(doc.text))


def test_negative_and_reversed_positions_do_not_raise() -> None:
    doc = Document("u", "abc\ndef")
    assert doc.offset_at(Position(-1, -5)) == 0
    doc.apply_change("X", Span(Position(1, 2), Position(0, 1)))  # end before start: an insert
    assert doc.text == "abc\ndeXf"


def test_full_replacement() -> None:
    doc = Document("u", "x = 1\n")
    doc.apply_change("def f():\n    pass\n", None)
    assert doc.text == "def f():\n    pass\n"
    assert doc.tree.root_node.children[0].type == "function_definition"


def test_unknown_encoding() -> None:
    with pytest.raises(EngineError):
        Document("u", "", encoding="latin-1")  # type: ignore[arg-type]


def test_crlf_joined_by_an_edit() -> None:
    doc = Document("u", "a\r\rb")
    doc.apply_change("\n", Span(Position(1, 0), Position(1, 0)))  # "a\r" + "\n" + "\rb"
    assert doc.text == "a\r\n\rb"
    assert [doc.line_text(i) for i in range(doc.line_count)] == ["a", "", "b"]
    assert doc.position_at(2) == Position(0, 1)


def test_store_open_change_close() -> None:
    store = DocumentStore(encoding="utf-32")
    doc = store.open("file:///a.py", "x = 1\n", 1)
    assert doc.encoding == "utf-32" and store.get("file:///a.py") is doc
    assert not store.change("file:///missing.py", 2, [(None, "y")])
    assert not store.close("file:///missing.py")
    assert store.change(
        "file:///a.py", 2, [(Span(Position(0, 4), Position(0, 5)), "2"), (None, "z = 3\n")]
    )
    new = store.get("file:///a.py")
    assert new is not None and new.text == "z = 3\n" and new.version == 2
    assert doc.text == "x = 1\n" and doc.version == 1  # the old version is untouched
    with pytest.raises(EngineError):
        new.apply_change("boom", None)  # published documents are read-only
    assert store.close("file:///a.py") and store.get("file:///a.py") is None
    assert store.snapshot("file:///a.py") is None


def test_snapshot_is_independent_of_later_edits() -> None:
    store = DocumentStore()
    store.open("u", "def f():\n    return 1\n", 1)
    snap = store.snapshot("u")
    assert snap is not None and snap.frozen
    before = dump(snap.tree)
    store.change("u", 2, [(Span(Position(1, 11), Position(1, 12)), "(2 + 3)")])
    assert snap.text == "def f():\n    return 1\n" and dump(snap.tree) == before
    current = store.get("u")
    assert current is not None and "(2 + 3)" in current.text


def test_readers_never_see_half_applied_edits() -> None:
    """Each change rewrites both lines; a reader must always see the two lines agree."""
    store = DocumentStore()
    store.open("u", "a = 0\nb = 0\n", 0)
    stop = threading.Event()
    bad: list[str] = []

    def read() -> None:
        while not stop.is_set():
            snap = store.snapshot("u")
            assert snap is not None
            first, second = snap.line_text(0), snap.line_text(1)
            if first[4:] != second[4:] or snap.tree.root_node.end_byte != len(snap.source):
                bad.append(snap.text)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for v in range(1, 300):
        store.change(
            "u",
            v,
            [
                (Span(Position(0, 4), Position(0, 100)), str(v)),
                (Span(Position(1, 4), Position(1, 100)), str(v)),
            ],
        )
    stop.set()
    for t in readers:
        t.join()
    assert bad == []


PIECES = st.sampled_from(
    [
        "x", "self", " ", "    ", "\t", "\n", "\r\n", "\r", "\x00", "😀", "é", "\ud800",
        "(", ")", "[", "]", "{", "}", ":", ".", ",", "=", '"', "'", '"""', "#", "\\",
        "def ", "class ", "if ", "return ", "f'", "{x}", "import os", "1.5",
    ]
)  # fmt: skip
EDIT = st.tuples(
    st.integers(-1, 12),
    st.integers(-1, 30),
    st.integers(-1, 12),
    st.integers(-1, 30),
    st.lists(PIECES, max_size=6).map("".join),
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.lists(PIECES, max_size=30).map("".join), edits=st.lists(EDIT, max_size=12))
def test_incremental_edits_match_reference(
    encoding: str, start: str, edits: list[tuple[int, int, int, int, str]]
) -> None:
    doc = Document("u", start, encoding=encoding)  # type: ignore[arg-type]
    text = start
    for l1, c1, l2, c2, insert in edits:
        span = Span(Position(l1, c1), Position(l2, c2))
        a = ref_offset(text, span.start, encoding)
        b = max(ref_offset(text, span.end, encoding), a)
        text = text[:a] + insert + text[b:]
        doc.apply_change(insert, span)
        assert doc.text == text
        assert [doc.line_text(i) for i in range(doc.line_count)] == ref_lines(text)
        assert dump(doc.tree) == dump(fresh(text))
        for offset in range(len(text) + 1):
            pos = doc.position_at(offset)
            inside_crlf = text[offset - 1 : offset + 1] == "\r\n"
            assert ref_offset(text, pos, encoding) == offset - inside_crlf
            assert doc.offset_at(pos) == offset - inside_crlf
