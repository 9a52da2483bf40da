"""Declarations and identifiers of a file, seen from a cursor, for scope-aware re-ranking."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Literal

from tree_sitter import Node, Query, QueryCursor

from .documents import PYTHON, Document

Role = Literal["attribute", "variable", "function"]
Where = Literal["function", "class", "file"]

_WHERE_RANK = {"function": 0, "class": 1, "file": 2}

_IDENTIFIERS = Query(PYTHON, "(identifier) @id")
# Capture names: the role of the declared name, or a scope node.
_DECLARATIONS = Query(
    PYTHON,
    """
    (function_definition name: (identifier) @function) @scope.function
    (class_definition name: (identifier) @function) @scope.class
    (assignment left: [(identifier) @variable
        (pattern_list (identifier) @variable) (tuple_pattern (identifier) @variable)
        (list_pattern (identifier) @variable) (list_splat_pattern (identifier) @variable)])
    (augmented_assignment left: (identifier) @variable)
    (for_statement left: [(identifier) @variable (pattern_list (identifier) @variable)])
    (for_in_clause left: [(identifier) @variable (pattern_list (identifier) @variable)])
    (named_expression name: (identifier) @variable)
    (as_pattern_target (identifier) @variable)
    (aliased_import alias: (identifier) @variable)
    (import_statement name: (dotted_name . (identifier) @variable))
    (import_from_statement name: (dotted_name (identifier) @variable))
    (parameters (identifier) @variable)
    (lambda_parameters (identifier) @variable)
    (default_parameter name: (identifier) @variable)
    (typed_parameter (identifier) @variable)
    (typed_default_parameter name: (identifier) @variable)
    (list_splat_pattern (identifier) @variable)
    (dictionary_splat_pattern (identifier) @variable)
    (assignment left: (attribute object: (identifier) @_self attribute: (identifier) @attribute)
        (#eq? @_self "self"))
    (augmented_assignment
        left: (attribute object: (identifier) @_self attribute: (identifier) @attribute)
        (#eq? @_self "self"))
    """,
)


@dataclass(frozen=True)
class Declaration:
    """How a name visible in the file was declared, relative to the cursor (for re-ranking)."""

    role: Role
    where: Where


_MARK = (-1, -1)  # stands for the class whose body holds a piece


@dataclass(frozen=True)
class _Decl:
    """A declaration found in a piece, with byte ranges relative to the piece."""

    name: str
    role: Role
    start: int  # the declared identifier
    end: int
    scope: tuple[int, int] | None  # innermost def/class around it; None: module level
    klass: tuple[int, int] | None  # innermost class around it, for self.x


# A piece is a top-level statement, or the header or one member of a top-level class. Facts
# are cached by the piece's bytes, so an edit costs only the piece it touches.
@dataclass(frozen=True)
class _Facts:
    """Identifiers and declarations of one piece, independent of where the piece sits."""

    names: tuple[str, ...]
    decls: tuple[_Decl, ...]
    file_roles: dict[str, Declaration]  # seen from anywhere else
    class_roles: dict[str, Declaration]  # seen from inside the class that holds the piece


@dataclass(frozen=True)
class _Piece:
    """A piece placed in the current document."""

    base: int  # byte offsets
    end: int
    klass: tuple[int, int] | None  # the class whose body holds it
    facts: _Facts

    def absolute(self, rng: tuple[int, int] | None) -> tuple[int, int] | None:
        """A piece-relative scope range in document bytes."""
        if rng is None or rng == _MARK:
            return self.klass if rng == _MARK else None
        return rng[0] + self.base, rng[1] + self.base


# Caches shared by worker threads; single dict operations are atomic, and a lost race only
# recomputes a value.
_documents: dict[str, list[_Piece]] = {}  # text -> its pieces
_facts_by_piece: dict[tuple, _Facts] = {}  # (kind, in a class, header, bytes) -> facts


def _node_text(doc: Document, node: Node) -> str:
    """The source text of a node."""
    return doc.source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _remember(cache: dict, key: object, value: object, size: int) -> None:
    """Store a value; forget everything when the cache is full (cheap, and rare)."""
    if len(cache) >= size:
        cache.clear()
    cache[key] = value


def _pieces(doc: Document) -> list[_Piece]:
    """The document cut into pieces with their facts, reusing the facts of unchanged pieces."""
    cached = _documents.get(doc.text)
    if cached is not None:
        return cached
    spans: list[tuple[Node, int, int, tuple[int, int] | None]] = []
    for child in doc.tree.root_node.children:
        inner = child.child_by_field_name("definition") or child
        body = inner.child_by_field_name("body") if inner.type == "class_definition" else None
        if body is None:
            spans.append((child, child.start_byte, child.end_byte, None))
        else:  # the class header, then each member: typing in a method touches one piece
            spans.append((child, child.start_byte, body.start_byte, None))
            spans.extend((m, m.start_byte, m.end_byte, inner.byte_range) for m in body.children)
    out: list[_Piece] = []
    for node, base, end, klass in spans:
        key = (node.type, klass is not None, end < node.end_byte, doc.source[base:end])
        # Error recovery depends on what surrounds a broken piece, so the same bytes can
        # parse differently elsewhere: only pieces without errors are reused by their bytes.
        facts = None if node.has_error else _facts_by_piece.get(key)
        if facts is None:
            facts = _facts(doc, node, base, end, klass)
            if not node.has_error:
                _remember(_facts_by_piece, key, facts, 50_000)
        out.append(_Piece(base, end, klass, facts))
    _remember(_documents, doc.text, out, 16)
    return out


def _facts(doc: Document, node: Node, base: int, end: int, klass: tuple | None) -> _Facts:
    """Identifiers and declarations of the bytes base..end of `node` (a class header or all)."""
    cursor = QueryCursor(_IDENTIFIERS)
    if end < node.end_byte:
        cursor.set_byte_range(base, end)
    # in document order: the bindings return a capture's nodes in an order that can change
    # from one process to the next, and the counts' order breaks ties in the list
    found = sorted(cursor.captures(node).get("id", []), key=lambda n: n.start_byte)
    # A MISSING identifier (inserted by error recovery) has no text: it is no token.
    names = tuple(_node_text(doc, n) for n in found if n.end_byte > n.start_byte)
    if end < node.end_byte:  # a class header: it declares the class name, at module level
        name = (node.child_by_field_name("definition") or node).child_by_field_name("name")
        decls = [_Decl(_node_text(doc, name), "function", 0, 0, None, None)] if name else []
    else:
        decls = _declarations(doc, node, base, klass)
    file_roles, class_roles = _roles(decls, None)
    return _Facts(names, tuple(decls), file_roles, class_roles)


def _declarations(doc: Document, node: Node, base: int, klass: tuple | None) -> list[_Decl]:
    """The declarations in `node` with their innermost scopes, by one sweep in document order."""
    events: list[tuple[int, int, int, str, Node]] = []
    for name, nodes in QueryCursor(_DECLARATIONS).captures(node).items():
        if not name.startswith("_"):
            # Scopes sort before the names they hold that start at the same byte.
            order = 0 if name.startswith("scope.") else 1
            events.extend((n.start_byte, order, -n.end_byte, name, n) for n in nodes)
    events.sort(key=lambda e: e[:4])  # the capture name too: no tie left to capture order
    # Open scopes as (start, end, is_class), relative to base; the holding class never closes.
    stack: list[tuple[int, int, bool]] = [(*_MARK, True)] if klass else []
    out: list[_Decl] = []
    for start, _, neg_end, name, n in events:
        start -= base
        while stack and stack[-1][0] >= 0 and stack[-1][1] <= start:
            stack.pop()
        if name.startswith("scope."):
            stack.append((start, -neg_end - base, name == "scope.class"))
            continue
        if n.start_byte == n.end_byte:
            continue  # a MISSING name from error recovery declares nothing
        # A def's name belongs to the scope around the def, which is the top of the stack.
        enclosing = stack[:-1] if name == "function" else stack
        scope = enclosing[-1][:2] if enclosing else None
        holder = next((s[:2] for s in reversed(enclosing) if s[2]), None)
        role: Role = name  # type: ignore[assignment]
        if role == "variable" and enclosing and enclosing[-1][2]:
            role = "attribute"  # a class body's names are read as attributes
        out.append(_Decl(_node_text(doc, n), role, start, -neg_end - base, scope, holder))
    return out


def _roles(
    decls: Iterable[_Decl], skip: int | None
) -> tuple[dict[str, Declaration], dict[str, Declaration]]:
    """First role of each name seen from elsewhere, and seen from the holding class.

    `skip` is a piece-relative cursor byte: a name being typed there declares nothing yet.
    """
    file_roles: dict[str, Declaration] = {}
    class_roles: dict[str, Declaration] = {}
    for d in decls:
        if skip is not None and d.start < skip <= d.end:
            continue
        file_roles.setdefault(d.name, Declaration(d.role, "file"))
        if (d.klass if d.role == "attribute" else d.scope) == _MARK:
            class_roles.setdefault(d.name, Declaration(d.role, "class"))
    return file_roles, class_roles


def _last_token_byte(doc: Document, offset: int) -> int | None:
    """Byte offset of the last non-space character before `offset` outside comments."""
    text = doc.text
    root = doc.tree.root_node
    end = offset
    while True:
        end = len(text[:end].rstrip())
        if end == 0:
            return None
        byte = doc.byte_offset_at(end - 1)
        node = root.descendant_for_byte_range(byte, byte + 1)
        if node is None or node.type != "comment":
            return byte
        end = doc.offset_at_byte(node.start_byte)


def _enclosing_scopes(doc: Document, offset: int, line_prefix: str) -> list[Node]:
    """The def/class nodes around the cursor, innermost first, judged by indentation too."""
    byte = _last_token_byte(doc, offset)
    if byte is None:
        return []
    node: Node | None = doc.tree.root_node.descendant_for_byte_range(byte, byte + 1)
    same_line = bool(line_prefix.strip())
    indent = len(line_prefix) - len(line_prefix.lstrip())
    out: list[Node] = []
    while node is not None:
        # tree-sitter ends a block at its last token; a new line belongs to the block while
        # it is indented deeper than the def/class header (Python's own rule).
        if node.type in ("function_definition", "class_definition") and (
            same_line or indent > node.start_point.column
        ):
            out.append(node)
        node = node.parent
    return out


def identifier_counts(doc: Document) -> dict[str, int]:
    """How often each identifier token occurs in the document (a fresh dict)."""
    return dict(Counter(chain.from_iterable(p.facts.names for p in _pieces(doc))))


def declarations(doc: Document, start: int, offset: int, before: str) -> dict[str, Declaration]:
    """Role and place (function/class/file) of each name declared in the file, seen from a cursor.

    `offset` is the cursor, `start` where the identifier typed before it starts (character
    offsets), `before` the line text before `start`. The name being typed is not a declaration.
    """
    pieces = _pieces(doc)
    enclosing = _enclosing_scopes(doc, start, before)
    functions = {n.byte_range for n in enclosing if n.type == "function_definition"}
    klass = next((n.byte_range for n in enclosing if n.type == "class_definition"), None)
    cursor = doc.byte_offset_at(offset)
    typed = next((p for p in pieces if p.base < cursor <= p.end), None) if start < offset else None

    def roles(p: _Piece) -> tuple[dict[str, Declaration], dict[str, Declaration]]:
        if p is typed:
            return _roles(p.facts.decls, cursor - p.base)
        return p.facts.file_roles, p.facts.class_roles

    out: dict[str, Declaration] = {}
    for p in reversed(pieces):  # earlier declarations win: update with them last
        out.update(roles(p)[0])
    if klass is not None:
        for p in reversed(pieces):
            if p.klass == klass:
                out.update(roles(p)[1])
    # The innermost def/class and all functions around it lie in one piece: look closer there.
    inner = enclosing[0].start_byte if enclosing else -1
    for p in pieces:
        if not p.base <= inner < p.end:
            continue
        for d in p.facts.decls:
            if p is typed and d.start < cursor - p.base <= d.end:
                continue
            where: Where = "file"
            if d.role != "attribute" and p.absolute(d.scope) in functions:
                where = "function"
            elif (
                klass is not None
                and p.absolute(d.klass if d.role == "attribute" else d.scope) == klass
            ):
                where = "class"
            if d.name not in out or _WHERE_RANK[where] < _WHERE_RANK[out[d.name].where]:
                out[d.name] = Declaration(d.role, where)
    return out
