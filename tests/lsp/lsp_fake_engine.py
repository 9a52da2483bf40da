"""A deterministic stand-in for the engine: ranks the file's own identifiers.

Markers on the cursor line steer it: BLOCK (work until cancelled), BOOM (a bug),
ENGINE_ERROR (an EngineError). The model path steers `load`: "missing" (error),
"crash" (load raises), "gated" (waits for `LOAD_GATE`).
"""

from __future__ import annotations

import keyword
import re
import threading
import time
from collections import Counter

from fillpoint.completion.documents import Document
from fillpoint.completion.types import (
    CancelToken,
    CompletionCandidate,
    CompletionResult,
    EngineError,
    EngineSettings,
    InlineResult,
    Position,
    Span,
)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TYPED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
BLOCK_LIMIT_S = 30.0  # a blocked call gives up on its own, so a failing test cannot hang

LOAD_GATE = threading.Event()


class BlockedCalls:
    """Counts calls that are blocked waiting for their cancel token."""

    def __init__(self) -> None:
        self._started = 0
        self._cond = threading.Condition()

    def started(self) -> None:
        """Record one more blocked call."""
        with self._cond:
            self._started += 1
            self._cond.notify_all()

    @property
    def count(self) -> int:
        """How many calls have blocked so far."""
        with self._cond:
            return self._started

    def wait(self, count: int, timeout: float) -> bool:
        """Wait until `count` calls have blocked; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._started >= count, timeout)


BLOCKED = BlockedCalls()


class FakeEngine:
    """Same methods as `fillpoint.completion.engine.Engine`, no model."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.error: str | None = None
        self.model_name = ""
        self._loaded = False
        self.calls = 0
        self.prepared: list[tuple[str, Position]] = []  # (text, cursor) of each prefetch

    def load(self) -> None:
        """Pretend to load; the model path decides how that goes."""
        path = self.settings.model_path or ""
        if "crash" in path:
            raise RuntimeError("the loader crashed")
        if "missing" in path:
            self.error = f"no model.onnx in {path}"
            return
        if "gated" in path:
            LOAD_GATE.wait(BLOCK_LIMIT_S)
        self.model_name = f"fake:{path}" if path else "fake"
        self._loaded = True

    @property
    def ready(self) -> bool:
        """True once loaded without error."""
        return self._loaded and self.error is None

    def _act_on_markers(self, doc: Document, pos: Position, cancel: CancelToken | None) -> None:
        """Block, crash or fail when the cursor line asks for it."""
        line = doc.line_text(pos.line)
        if "BOOM" in line:
            raise RuntimeError("engine bug")
        if "ENGINE_ERROR" in line:
            raise EngineError("the engine refused")
        if "BLOCK" in line:
            BLOCKED.started()
            deadline = time.monotonic() + BLOCK_LIMIT_S
            while time.monotonic() < deadline:  # a real engine polls between model steps
                if cancel is not None:
                    cancel.check()
                time.sleep(0.005)

    def complete(
        self, doc: Document, pos: Position, cancel: CancelToken | None = None
    ) -> CompletionResult:
        """The file's identifiers that extend the typed prefix, most frequent first."""
        self.calls += 1
        self._act_on_markers(doc, pos, cancel)
        offset = doc.offset_at(pos)
        typed = TYPED.search(doc.text[doc.line_start(pos.line) : offset])
        prefix = typed.group() if typed else ""
        counts = Counter(w for w in IDENTIFIER.findall(doc.text) if w.startswith(prefix))
        counts.pop(prefix, None)
        total = sum(counts.values()) or 1
        items = [
            CompletionCandidate(
                text=word,
                probability=n / total,
                source="fake",
                kind="keyword" if keyword.iskeyword(word) else "identifier",
            )
            for word, n in counts.most_common(self.settings.max_items)
        ]
        start = doc.position_at(offset - len(prefix))
        return CompletionResult(items=items, replace=Span(start, pos))

    def prepare(self, doc: Document, pos: Position, cancel: CancelToken | None = None) -> int:
        """Record the prefetch (idle work); BLOCK, BOOM and ENGINE_ERROR lines act as usual."""
        self.prepared.append((doc.text, pos))
        self._act_on_markers(doc, pos, cancel)
        return 1

    def inline(
        self, doc: Document, pos: Position, cancel: CancelToken | None = None
    ) -> InlineResult:
        """The best completion followed by `()` as ghost text."""
        ranked = self.complete(doc, pos, cancel)
        if not ranked.items:
            return InlineResult()
        best = ranked.items[0]
        return InlineResult(
            text=best.text + "()", replace=ranked.replace, probability=best.probability
        )
