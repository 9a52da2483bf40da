"""Conversion between engine objects and lsprotocol types, in both directions."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from lsprotocol import types as lsp

from fillpoint.completion.types import (
    CompletionCandidate,
    CompletionResult,
    InlineResult,
    Position,
    Span,
)

_KINDS: dict[str, lsp.CompletionItemKind] = {
    "identifier": lsp.CompletionItemKind.Variable,
    "keyword": lsp.CompletionItemKind.Keyword,
    "token": lsp.CompletionItemKind.Text,
}

_MESSAGE_TYPES = {
    logging.ERROR: lsp.MessageType.Error,
    logging.WARNING: lsp.MessageType.Warning,
    logging.INFO: lsp.MessageType.Info,
    logging.DEBUG: lsp.MessageType.Log,
}

SORT_WIDTH = 4  # zero-padded ranks sort as strings; 4 digits cover any sane maxItems


def position(pos: lsp.Position) -> Position:
    """An engine position from a protocol position (same encoding, same zero-based line)."""
    return Position(line=pos.line, character=pos.character)


def span(rng: lsp.Range) -> Span:
    """An engine span from a protocol range."""
    return Span(start=position(rng.start), end=position(rng.end))


def lsp_position(pos: Position) -> lsp.Position:
    """A protocol position from an engine position."""
    return lsp.Position(line=pos.line, character=pos.character)


def lsp_range(sp: Span) -> lsp.Range:
    """A protocol range from an engine span."""
    return lsp.Range(start=lsp_position(sp.start), end=lsp_position(sp.end))


def content_changes(
    changes: Sequence[lsp.TextDocumentContentChangeEvent],
) -> list[tuple[Span | None, str]]:
    """didChange events as (span or None for the whole text, new text), in order."""
    out: list[tuple[Span | None, str]] = []
    for change in changes:
        if isinstance(change, lsp.TextDocumentContentChangePartial):
            out.append((span(change.range), change.text))
        else:
            out.append((None, change.text))
    return out


def detail(candidate: CompletionCandidate) -> str:
    """The item's detail line: who suggested it and how likely the model thinks it is."""
    return f"fillpoint {100.0 * candidate.probability:.1f}% ({candidate.source})"


def completion_item(
    candidate: CompletionCandidate, rank: int, replace: lsp.Range
) -> lsp.CompletionItem:
    """One ranked candidate as an item whose edit replaces the typed part of the identifier."""
    return lsp.CompletionItem(
        label=candidate.text,
        kind=_KINDS.get(candidate.kind, lsp.CompletionItemKind.Text),
        detail=detail(candidate),
        sort_text=str(rank).zfill(SORT_WIDTH),
        filter_text=candidate.text,
        insert_text_format=lsp.InsertTextFormat.PlainText,
        text_edit=lsp.TextEdit(range=replace, new_text=candidate.text),
    )


def completion_list(
    result: CompletionResult, cursor: Position, limit: int | None = None
) -> lsp.CompletionList:
    """The engine's ranked list, most probable first; incomplete so typing asks again."""
    replace = lsp_range(result.replace or Span(cursor, cursor))
    ranked = sorted(result.items, key=lambda c: -c.probability)[:limit]  # stable sort
    items = [completion_item(c, rank, replace) for rank, c in enumerate(ranked)]
    return lsp.CompletionList(is_incomplete=True, items=items)


def empty_completion_list() -> lsp.CompletionList:
    """No items; incomplete, so the client asks again (e.g. once the model has loaded)."""
    return lsp.CompletionList(is_incomplete=True, items=[])


def inline_list(result: InlineResult, cursor: Position) -> lsp.InlineCompletionList:
    """Ghost text that replaces the engine's span (or is inserted at the cursor)."""
    if not result.text:
        return empty_inline_list()
    replace = lsp_range(result.replace or Span(cursor, cursor))
    return lsp.InlineCompletionList(
        items=[lsp.InlineCompletionItem(insert_text=result.text, range=replace)]
    )


def empty_inline_list() -> lsp.InlineCompletionList:
    """No ghost text."""
    return lsp.InlineCompletionList(items=[])


def message_type(level: int) -> lsp.MessageType:
    """The window/logMessage type for a `logging` level (finer levels are plain logs)."""
    return _MESSAGE_TYPES.get(level, lsp.MessageType.Log)
