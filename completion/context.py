"""What the engine knows about a cursor position: windows, the typed prefix, syntax, scopes."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from tree_sitter import Node, Query, QueryCursor

from .declarations import Declaration, declarations, identifier_counts
from .documents import PYTHON, Document
from .types import Position

# DESIGN.md's cardinal tokens; `nonlocal` joins `global`.
CARDINAL_KEYWORDS = frozenset(
    "await assert raise del lambda yield return except while for if elif else global nonlocal"
    " in and not or is with".split()
)
# Last characters of the cardinal operators: every binary and augmented operator ends in one
# of these. `=` and `:` are added to DESIGN.md's list: an expression follows them too.
CARDINAL_CHARS = frozenset(".;,[({~+-*/%@&|^<>=:")
# Keywords that are values, so `None.` is still an attribute access.
VALUE_KEYWORDS = frozenset({"None", "True", "False"})

PREFIX_STRIDES = 3  # the prefix window moves a third of its budget at a time (`_windows`)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ESCAPED_BREAK = re.compile(r"\\(?:\r\n|\r|\n)")
_ORPHAN_QUOTES = Query(PYTHON, "(ERROR (string_start) @start)")


@dataclass
class Context:
    """Everything the completion pipeline reads about one cursor position."""

    offset: int  # character index of the cursor in the document text
    position: Position  # the cursor, clamped to the document
    prefix: str  # text before the cursor, from a line start
    suffix: str  # text after the cursor, up to a line end
    partial: str  # identifier characters typed just before the cursor
    partial_start: Position  # completions replace partial_start..position
    line_prefix: str
    line_suffix: str
    in_string_or_comment: bool
    after_dot: bool
    cardinal: bool  # the token before the partial is a cardinal point, or a statement starts
    identifiers: dict[str, int] = field(default_factory=dict)
    scopes: dict[str, Declaration] = field(default_factory=dict)


def _is_ident_char(ch: str) -> bool:
    """True for characters that may continue a Python identifier."""
    if ch.isascii():
        return ch.isalnum() or ch == "_"
    return ("a" + ch).isidentifier()


def _trailing_identifier(text: str) -> str:
    """The identifier that `text` ends with, or '' (a number is not an identifier)."""
    i = len(text)
    while i > 0 and _is_ident_char(text[i - 1]):
        i -= 1
    run = text[i:]
    return run if run.isidentifier() else ""


def _node_text(doc: Document, node: Node) -> str:
    """The source text of a node."""
    return doc.source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _in_interpolation(body: str) -> bool:
    """True when f-string text (after its opening quote) ends inside a {...} field."""
    body = re.sub(r"\{\{|\}\}", "", body)  # doubled braces are literal text
    return body.count("{") > body.count("}")


def _orphan_triple_quote(doc: Document, offset: int) -> Node | None:
    """The last triple quote before `offset` if it opens a string that never closes."""
    at = max(doc.text.rfind('"""', 0, offset), doc.text.rfind("'''", 0, offset))
    if at < 0:
        return None
    byte = doc.byte_offset_at(at)
    node = doc.tree.root_node.descendant_for_byte_range(byte, byte + 3)
    if node is None or node.type != "string_start" or node.parent is None:
        return None
    return node if node.parent.type == "ERROR" else None


def _in_unclosed_string(doc: Document, offset: int, byte: int) -> bool:
    """True after an opening quote that tree-sitter could not match (the string being typed)."""
    # A one-line string can only open on the cursor's (logical) line: search only there.
    line = doc.position_at(offset).line
    while line > 0 and doc.line_text(line - 1).endswith("\\"):
        line -= 1
    cursor = QueryCursor(_ORPHAN_QUOTES)
    cursor.set_byte_range(doc.byte_offset_at(doc.line_start(line)), byte)
    found = cursor.captures(doc.tree.root_node).get("start", [])
    starts = [n for n in found if n.end_byte <= byte]
    triple = _orphan_triple_quote(doc, offset)
    if triple is not None:
        starts.append(triple)
    if not starts:
        return False
    start = max(starts, key=lambda n: n.start_byte)
    quote = _node_text(doc, start)
    body = doc.source[start.end_byte : byte].decode("utf-8", "replace")
    if not quote.endswith(('"""', "'''")) and _LINE_BREAK.search(_ESCAPED_BREAK.sub("", body)):
        return False  # a one-line string ends at the line break
    if "f" in quote.lower() or "t" in quote.lower():
        return not _in_interpolation(body)
    return True


def _in_string_or_comment(doc: Document, offset: int) -> bool:
    """True when the cursor is in a comment or a string's text (not in an f-string's {...})."""
    if offset == 0:
        return False
    byte = doc.byte_offset_at(offset)
    before = doc.byte_offset_at(offset - 1)
    node: Node | None = doc.tree.root_node.descendant_for_byte_range(before, byte)
    while node is not None:
        if node.type == "comment":
            return True
        if node.type == "interpolation" and node.start_byte < byte < node.end_byte:
            return False
        if node.type == "string":
            opening = node.children[0] if node.children else None
            closing = node.children[-1] if node.child_count > 1 else None
            if closing is not None and (closing.type != "string_end" or closing.is_missing):
                closing = None
            after_open = opening is None or opening.end_byte <= byte
            return after_open and (closing is None or byte <= closing.start_byte)
        node = node.parent
    return doc.tree.root_node.has_error and _in_unclosed_string(doc, offset, byte)


def _after_dot(text: str, dot_end: int) -> bool:
    """True when text[:dot_end] ends with an attribute-access dot (not `1.` or `...`)."""
    head = text[max(0, dot_end - 400) : dot_end].rstrip()
    if not head.endswith(".") or head.endswith(".."):
        return False
    head = head[:-1].rstrip()
    if not head:
        return False
    if head[-1] in ")]}'\"":
        return True
    word = _trailing_identifier(head)
    if not word:
        return False  # a number (`1.` is a float) or an operator
    return not keyword.iskeyword(word) or word in VALUE_KEYWORDS


def _is_cardinal(before: str, after_dot: bool) -> bool:
    """True when the line text before the partial ends at a cardinal point or is blank."""
    head = before.rstrip()
    if not head:
        return True  # a statement (or a continuation line) starts here
    if head[-1] == ".":
        return after_dot
    if head[-1] in CARDINAL_CHARS:
        return True
    word = _trailing_identifier(head)
    return word in CARDINAL_KEYWORDS and not head[: -len(word)].rstrip().endswith(".")


def _windows(text: str, offset: int, prefix_chars: int, suffix_chars: int) -> tuple[str, str]:
    """Prefix cut at a line start and suffix cut after a line break, within the budgets.

    The prefix starts at the first line break after a multiple of a third of its budget,
    so that its start (and with it the tokens of the model's prompt, whose cached
    keys/values hold absolute positions) stays put while the user types: a start that
    moved with every line typed would make each request run the whole prompt again.
    """
    start = max(0, offset - max(prefix_chars, 0))
    if start > 0 and (stride := prefix_chars // PREFIX_STRIDES) > 0:
        start = min(-(-start // stride) * stride, offset)
    if start > 0:
        brk = _LINE_BREAK.search(text, start - 1, offset)
        if brk is not None:  # otherwise one long line: cut it mid-line
            start = brk.end()
    end = min(len(text), offset + max(suffix_chars, 0))
    if end < len(text):
        last = max(text.rfind("\n", offset, end), text.rfind("\r", offset, end))
        if last >= 0:
            end = last + 1 + text.startswith("\r\n", last)
    return text[start:offset], text[offset:end]


def build_context(
    doc: Document, pos: Position, prefix_chars: int = 6000, suffix_chars: int = 2000
) -> Context:
    """Describe the cursor at `pos` (clamped into the document) for the completion pipeline."""
    text = doc.text
    offset = doc.offset_at(pos)
    position = doc.position_at(offset)
    line_start = doc.line_start(position.line)
    line = doc.line_text(position.line)
    line_prefix = text[line_start:offset]
    line_suffix = line[len(line_prefix) :]
    partial = _trailing_identifier(line_prefix)
    start = offset - len(partial)
    before = line_prefix[: len(line_prefix) - len(partial)]
    after_dot = _after_dot(text, start)
    prefix, suffix = _windows(text, offset, prefix_chars, suffix_chars)

    identifiers = identifier_counts(doc)
    typed = _typed_identifier(doc, offset) if partial else None
    if typed is not None and identifiers.get(typed, 0) > 0:
        identifiers[typed] -= 1
        if identifiers[typed] == 0:
            del identifiers[typed]
    return Context(
        offset=offset,
        position=position,
        prefix=prefix,
        suffix=suffix,
        partial=partial,
        partial_start=doc.position_at(start),
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        in_string_or_comment=_in_string_or_comment(doc, offset),
        after_dot=after_dot,
        cardinal=_is_cardinal(before, after_dot),
        identifiers=identifiers,
        scopes=declarations(doc, start, offset, before),
    )


def _typed_identifier(doc: Document, offset: int) -> str | None:
    """The identifier token that the cursor is in or just after, if the tree has one there."""
    byte = doc.byte_offset_at(offset)
    node = doc.tree.root_node.descendant_for_byte_range(doc.byte_offset_at(offset - 1), byte)
    if node is None or node.type != "identifier":
        return None
    return _node_text(doc, node)
