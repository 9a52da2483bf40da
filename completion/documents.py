"""Open documents: text, LSP position conversion and an incrementally updated tree-sitter tree."""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections.abc import Iterable
from typing import Literal, get_args

import tree_sitter_python
from tree_sitter import Language, Parser, Point, Tree

from .types import EngineError, Position, Span

PositionEncoding = Literal["utf-8", "utf-16", "utf-32"]

PYTHON = Language(tree_sitter_python.language())

# LSP: a line ends at \r\n, \r or \n (\r\n first so it counts as one break).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")
_local = threading.local()


def _parser() -> Parser:
    """A parser for this thread: tree-sitter parsers must not be shared between threads."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = Parser(PYTHON)
    return parser


def encode_utf8(text: str) -> bytes:
    """UTF-8 for tree-sitter; lone surrogates become U+FFFD, which is also 3 bytes long."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def utf8_len(text: str) -> int:
    """Length of `text` in the bytes that encode_utf8 produces."""
    # surrogatepass keeps lengths equal to encode_utf8's (3 bytes per lone surrogate).
    return len(text.encode("utf-8", "surrogatepass"))


def code_units(text: str, encoding: PositionEncoding) -> int:
    """Length of `text` counted in the units of an LSP position encoding."""
    if encoding == "utf-32" or text.isascii():
        return len(text)
    if encoding == "utf-16":
        # A lone surrogate is one UTF-16 unit; a character outside the BMP is two.
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    return utf8_len(text)


def _char_units(ch: str, encoding: PositionEncoding) -> int:
    """Units one character takes in an LSP position encoding."""
    cp = ord(ch)
    if encoding == "utf-32" or cp < 0x80:
        return 1
    if encoding == "utf-16":
        return 2 if cp > 0xFFFF else 1
    return 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def _tree_point(text: str, offset: int) -> Point:
    """The tree-sitter point of a character offset: rows count only \\n, columns are bytes."""
    row = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return Point(row, utf8_len(text[line_start:offset]))


def _splice_line_starts(starts: list[int], new: str, start: int, end: int, size: int) -> list[int]:
    """Line starts after old[start:end] became `size` characters, without rescanning it all."""
    # Whether p starts a line depends only on the characters at p - 1 and p, so starts
    # before `start` stay, starts after the replaced text shift, and only the new text and
    # one character around it need a scan.
    keep = bisect_right(starts, start - 1)
    scan_from = max(start - 1, 0)
    scan_to = min(start + size + 2, len(new))
    fresh = [
        m.end()
        for m in _LINE_BREAK.finditer(new, scan_from, scan_to)
        if start <= m.end() <= start + size
    ]
    delta = size - (end - start)
    shifted = [q + delta for q in starts[bisect_right(starts, end) :]]
    return starts[:keep] + ([0] if start == 0 else []) + fresh + shifted


class Document:
    """One open text document with its syntax tree; position conversions never raise."""

    def __init__(
        self,
        uri: str,
        text: str,
        version: int = 0,
        language_id: str = "python",
        encoding: PositionEncoding = "utf-16",
    ) -> None:
        if encoding not in get_args(PositionEncoding):
            raise EngineError(f"unknown position encoding {encoding!r}")
        self.uri = uri
        self.version = version
        self.language_id = language_id
        self.encoding: PositionEncoding = encoding
        self._frozen = False
        self._set_text(text)
        self._tree: Tree = _parser().parse(self._source)

    def _set_text(self, text: str, starts: list[int] | None = None) -> None:
        """Replace the text and the derived bytes and line index (given or computed)."""
        self._text = text
        self._source = encode_utf8(text)
        self._ascii = text.isascii()
        if starts is None:
            starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
        self._line_starts = starts

    @property
    def text(self) -> str:
        """The whole document."""
        return self._text

    @property
    def source(self) -> bytes:
        """The UTF-8 bytes the tree was parsed from (node byte offsets index into these)."""
        return self._source

    @property
    def tree(self) -> Tree:
        """The syntax tree of the current text; it is never edited in place after it is set."""
        return self._tree

    @property
    def frozen(self) -> bool:
        """True for documents published by a DocumentStore, which must not change."""
        return self._frozen

    @property
    def line_count(self) -> int:
        """Number of lines; a text that ends with a line break has an empty last line."""
        return len(self._line_starts)

    def _line_bounds(self, line: int) -> tuple[int, int]:
        """Character offsets of the start and end (before the line break) of a valid line."""
        start = self._line_starts[line]
        if line + 1 >= len(self._line_starts):
            return start, len(self._text)
        nxt = self._line_starts[line + 1]
        brk = 2 if nxt - 2 >= start and self._text.startswith("\r\n", nxt - 2) else 1
        return start, nxt - brk

    def line_text(self, line: int) -> str:
        """The text of a line without its line break; '' for lines that do not exist."""
        if not 0 <= line < len(self._line_starts):
            return ""
        start, end = self._line_bounds(line)
        return self._text[start:end]

    def line_start(self, line: int) -> int:
        """Character offset where a line starts (clamped to the document)."""
        line = min(max(line, 0), len(self._line_starts) - 1)
        return self._line_starts[line]

    def offset_at(self, pos: Position) -> int:
        """Character index into `text` of an LSP position, clamped to the document."""
        if pos.line >= len(self._line_starts):
            return len(self._text)
        start, end = self._line_bounds(max(pos.line, 0))
        want = max(pos.character, 0)
        if self.encoding == "utf-32" or self._ascii:
            return min(start + want, end)
        used = 0
        for i in range(start, end):
            used += _char_units(self._text[i], self.encoding)
            if used > want:  # the position falls inside or before this character
                return i
        return end

    def position_at(self, offset: int) -> Position:
        """LSP position of a character index; offsets inside a line break map to the line end."""
        offset = min(max(offset, 0), len(self._text))
        line = bisect_right(self._line_starts, offset) - 1
        start, end = self._line_bounds(line)
        return Position(line, code_units(self._text[start : min(offset, end)], self.encoding))

    def byte_offset_at(self, offset: int) -> int:
        """Byte offset in `source` (and in the tree) of a character index."""
        offset = min(max(offset, 0), len(self._text))
        return utf8_len(self._text[:offset])

    def offset_at_byte(self, byte: int) -> int:
        """Character index of a byte offset in `source`, rounded down to a character start."""
        return len(self._source[: max(byte, 0)].decode("utf-8", "ignore"))

    def apply_change(self, text: str, span: Span | None = None) -> None:
        """Replace `span` (the whole document when None) with `text` and re-parse incrementally."""
        if self._frozen:
            raise EngineError(f"{self.uri} is a read-only snapshot; change it through the store")
        if span is None:
            self._set_text(text)
            self._tree = _parser().parse(self._source)
            return
        old = self._text
        start = self.offset_at(span.start)
        end = max(self.offset_at(span.end), start)
        new = old[:start] + text + old[end:]
        start_byte = utf8_len(old[:start])
        old_end_byte = start_byte + utf8_len(old[start:end])
        new_end_byte = start_byte + utf8_len(text)
        start_point = _tree_point(old, start)
        old_end_point = _tree_point(old, end)
        new_end_point = _tree_point(new, start + len(text))
        # Edit a copy: the current tree may be held by a snapshot on another thread.
        edited = self._tree.copy()
        edited.edit(
            start_byte, old_end_byte, new_end_byte, start_point, old_end_point, new_end_point
        )
        self._set_text(new, _splice_line_starts(self._line_starts, new, start, end, len(text)))
        # tree-sitter's Python lexer treats a NUL character as the end of input, and reusing
        # subtrees across one can give another tree than a fresh parse: parse those afresh
        if "\x00" in new:
            self._tree = _parser().parse(self._source)
        else:
            self._tree = _parser().parse(self._source, edited)

    def copy(self, frozen: bool = False) -> Document:
        """An independent document with the same content and its own copy of the tree."""
        twin = Document.__new__(Document)
        twin.__dict__.update(self.__dict__)
        twin._tree = self._tree.copy()
        twin._frozen = frozen
        return twin

    def __repr__(self) -> str:
        return f"Document({self.uri!r}, version={self.version}, {len(self._text)} chars)"


class DocumentStore:
    """The open documents of a session, safe to read from worker threads while edits arrive."""

    def __init__(self, encoding: PositionEncoding = "utf-16") -> None:
        if encoding not in get_args(PositionEncoding):
            raise EngineError(f"unknown position encoding {encoding!r}")
        self.encoding: PositionEncoding = encoding
        self._lock = threading.Lock()
        self._docs: dict[str, Document] = {}

    def open(self, uri: str, text: str, version: int, language_id: str = "python") -> Document:
        """Start tracking a document (replacing any document already open at `uri`)."""
        doc = Document(uri, text, version, language_id, self.encoding)
        doc._frozen = True
        with self._lock:
            self._docs[uri] = doc
        return doc

    def change(self, uri: str, version: int, changes: Iterable[tuple[Span | None, str]]) -> bool:
        """Apply LSP content changes in order; False (and nothing done) for an unknown uri."""
        with self._lock:
            current = self._docs.get(uri)
            if current is None:
                return False
            # Published documents never change: build the next version aside, then swap it in,
            # so a reader holds either the old version or the new one, never a half-applied edit.
            doc = current.copy()
            for span, text in changes:
                doc.apply_change(text, span)
            doc.version = version
            doc._frozen = True
            self._docs[uri] = doc
        return True

    def close(self, uri: str) -> bool:
        """Stop tracking a document; False for an unknown uri."""
        with self._lock:
            return self._docs.pop(uri, None) is not None

    def get(self, uri: str) -> Document | None:
        """The current (read-only) version of a document, or None."""
        with self._lock:
            return self._docs.get(uri)

    def snapshot(self, uri: str) -> Document | None:
        """A read-only copy with its own tree, for use on another thread; None if not open."""
        with self._lock:
            doc = self._docs.get(uri)
            return None if doc is None else doc.copy(frozen=True)

    def uris(self) -> list[str]:
        """The uris of the open documents."""
        with self._lock:
            return list(self._docs)

    def __contains__(self, uri: object) -> bool:
        with self._lock:
            return uri in self._docs

    def __len__(self) -> int:
        with self._lock:
            return len(self._docs)
