"""Conversion of engine results to lsprotocol types."""

from __future__ import annotations

from lsprotocol import types as lsp

from fillpoint.completion.types import (
    CompletionCandidate,
    CompletionResult,
    InlineResult,
    Position,
    Span,
)
from fillpoint.lsp import convert

CURSOR = Position(3, 10)
TYPED = Span(Position(3, 7), CURSOR)


def _result() -> CompletionResult:
    return CompletionResult(
        items=[
            CompletionCandidate("assert_", 0.05, "pycoder", "identifier"),
            CompletionCandidate("self", 0.431, "pycoder", "identifier"),
            CompletionCandidate("return", 0.2, "file", "keyword"),
            CompletionCandidate("(", 0.2, "pycoder", "token"),
        ],
        replace=TYPED,
    )


def test_items_are_ranked_by_probability() -> None:
    items = convert.completion_list(_result(), CURSOR).items
    assert [i.label for i in items] == ["self", "return", "(", "assert_"]
    assert [i.sort_text for i in items] == ["0000", "0001", "0002", "0003"]
    assert sorted(items, key=lambda i: i.sort_text) == items


def test_item_fields() -> None:
    result = convert.completion_list(_result(), CURSOR)
    assert isinstance(result, lsp.CompletionList) and result.is_incomplete
    top = result.items[0]
    assert top.detail == "fillpoint 43.1% (pycoder)"
    assert top.kind == lsp.CompletionItemKind.Variable
    assert top.filter_text == "self"
    assert top.insert_text_format == lsp.InsertTextFormat.PlainText
    assert top.text_edit == lsp.TextEdit(
        range=lsp.Range(lsp.Position(3, 7), lsp.Position(3, 10)), new_text="self"
    )
    kinds = {i.label: i.kind for i in result.items}
    assert kinds["return"] == lsp.CompletionItemKind.Keyword
    assert kinds["("] == lsp.CompletionItemKind.Text


def test_no_replace_span_inserts_at_cursor() -> None:
    result = CompletionResult(items=[CompletionCandidate("x", 1.0, "file")])
    edit = convert.completion_list(result, CURSOR).items[0].text_edit
    assert edit.range == lsp.Range(lsp.Position(3, 10), lsp.Position(3, 10))


def test_limit() -> None:
    assert [i.label for i in convert.completion_list(_result(), CURSOR, limit=2).items] == [
        "self",
        "return",
    ]


def test_empty_lists() -> None:
    assert convert.empty_completion_list() == lsp.CompletionList(is_incomplete=True, items=[])
    assert convert.empty_inline_list() == lsp.InlineCompletionList(items=[])
    assert convert.completion_list(CompletionResult(), CURSOR).items == []


def test_inline() -> None:
    result = convert.inline_list(InlineResult(text="self.assertEqual(", replace=TYPED), CURSOR)
    assert result.items == [
        lsp.InlineCompletionItem(
            insert_text="self.assertEqual(",
            range=lsp.Range(lsp.Position(3, 7), lsp.Position(3, 10)),
        )
    ]
    at_cursor = convert.inline_list(InlineResult(text="()"), CURSOR).items[0]
    assert at_cursor.range == lsp.Range(lsp.Position(3, 10), lsp.Position(3, 10))
    assert convert.inline_list(InlineResult(text=""), CURSOR).items == []


def test_positions_and_changes_round_trip() -> None:
    rng = lsp.Range(lsp.Position(1, 2), lsp.Position(3, 4))
    assert convert.lsp_range(convert.span(rng)) == rng
    changes = convert.content_changes(
        [
            lsp.TextDocumentContentChangePartial(range=rng, text="a"),
            lsp.TextDocumentContentChangeWholeDocument(text="whole"),
        ]
    )
    assert changes == [(Span(Position(1, 2), Position(3, 4)), "a"), (None, "whole")]
