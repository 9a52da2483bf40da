"""Answers for a user who types what was just suggested, without running the model again.

After a completion list for `self.ba|`, typing `l` keeps the same document up to the
identifier: the new list is the old one filtered to what still matches. After ghost text
`balance)`, typing `bal` leaves `ance)` to show. A cached answer is used only when the text
before the identifier (or before the ghost text) is exactly the same as when it was made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from .types import CompletionCandidate


@dataclass(frozen=True)
class _List:
    uri: str
    head: str  # the document text before the typed identifier
    partial: str
    items: tuple[CompletionCandidate, ...]


@dataclass(frozen=True)
class _Ghost:
    uri: str
    before: str  # the document text before the cursor
    text: str


AHEAD = 2  # lists made ahead kept per document (one per guessed keystroke)


@dataclass(frozen=True)
class _Ahead:
    text: str  # the whole document, as it would be after the keystroke
    offset: int
    items: tuple[CompletionCandidate, ...]


class TypedThrough:
    """The last completion list and ghost text of each document, reused while typed through."""

    def __init__(self, size: int = 64) -> None:
        self._lists: dict[str, _List] = {}
        self._ghosts: dict[str, _Ghost] = {}
        self._ahead: dict[str, list[_Ahead]] = {}
        self._size = size
        self._lock = threading.Lock()

    def _put(self, table: dict, uri: str, value: object) -> None:
        with self._lock:
            if len(table) >= self._size and uri not in table:
                table.pop(next(iter(table)))
            table[uri] = value

    def remember_list(
        self, uri: str, head: str, partial: str, items: list[CompletionCandidate]
    ) -> None:
        """Keep a list just answered."""
        self._put(self._lists, uri, _List(uri, head, partial, tuple(items)))

    def has_list(self, uri: str, head: str, partial: str) -> bool:
        """True when the last list of `uri` was made for exactly this head and typed part."""
        with self._lock:
            last = self._lists.get(uri)
        return last is not None and last.head == head and last.partial == partial

    def list_for(self, uri: str, head: str, partial: str) -> list[CompletionCandidate] | None:
        """The last list filtered to `partial`, if the user only typed further into the name."""
        with self._lock:
            last = self._lists.get(uri)
        if last is None or len(partial) <= len(last.partial):
            return None
        if not partial.startswith(last.partial) or head != last.head:
            return None
        kept = [c for c in last.items if c.text.startswith(partial) and c.text != partial]
        total = sum(c.probability for c in kept)
        if not kept or total <= 0:
            return None
        return [replace(c, probability=c.probability / total) for c in kept]

    def remember_speculated(
        self, uri: str, text: str, offset: int, items: list[CompletionCandidate]
    ) -> None:
        """Keep a list made ahead for a document the user has not typed yet (the text it
        would have, and the cursor's offset in it); the last AHEAD lists per document."""
        with self._lock:
            kept = self._ahead.get(uri, [])
        self._put(self._ahead, uri, [*kept[-(AHEAD - 1) :], _Ahead(text, offset, tuple(items))])

    def speculated(self, uri: str, text: str, offset: int) -> list[CompletionCandidate] | None:
        """The list made ahead for exactly this document text and cursor, if any."""
        with self._lock:
            kept = self._ahead.get(uri, [])
        for ahead in kept:
            if ahead.offset == offset and ahead.text == text:
                return list(ahead.items)
        return None

    def remember_ghost(self, uri: str, before: str, text: str) -> None:
        """Keep ghost text just shown."""
        self._put(self._ghosts, uri, _Ghost(uri, before, text))

    def ghost_for(self, uri: str, before: str) -> str | None:
        """The rest of the last ghost text, if the user typed its beginning."""
        with self._lock:
            last = self._ghosts.get(uri)
        if last is None or len(before) <= len(last.before) or not before.startswith(last.before):
            return None
        typed = before[len(last.before) :]
        if not last.text.startswith(typed) or len(typed) >= len(last.text):
            return None
        return last.text[len(typed) :]
