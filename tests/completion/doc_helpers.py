"""Documents and spans for engine tests."""

from __future__ import annotations

from fillpoint.completion.documents import Document
from fillpoint.completion.types import Position, Span


def at_end(text: str) -> tuple[Document, Position]:
    """A document and the position after its last character."""
    lines = text.split("\n")
    return Document("file:///t.py", text), Position(len(lines) - 1, len(lines[-1]))


def typed(doc: Document, span: Span) -> str:
    """The document text a span covers."""
    return doc.text[doc.offset_at(span.start) : doc.offset_at(span.end)]
