"""Plain data types shared by the engine and the protocol layer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

# bytelevel (the default): exact next-byte probabilities where the prompt ends, for the list
# (covers, then a token beam: `ByteLevel.complete_identifier_healed`) and the ghost text. On
# held-out code it ranks names as healing does or a little better (MRR@10 0.534 vs 0.530 at
# 1000 name starts, top-1 72.7% vs 72.2% inside names) and matches more ghost text inside
# lines (43.2% vs 41.5% exact match), lists at 46-48 ms vs 47-55 ms healed at the median
# (docs/evaluation/results.md, with its command). auto:
# byte-level ghost text and a healed list. healing: back off the last pre-token and spell it
# again. naive: the prompt as typed.
MidTokenMode = Literal["auto", "bytelevel", "healing", "naive"]
LineDrafts = Literal["document", "table", "off"]


class EngineError(Exception):
    """The one error type of the engine; the protocol layer maps it to a message."""


class Cancelled(EngineError):
    """The request was cancelled or superseded while it ran."""


class CancelToken:
    """A flag that a long-running engine call polls between model steps; it also tells the
    callbacks given to `on_cancel` (the model call under way stops on its own then)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        """Ask the running call to stop."""
        with self._lock:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the token is cancelled (at once if it is already)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def forget(self, callback: Callable[[], None]) -> None:
        """Do not call `callback` on cancel after all (a token that outlives many calls
        does not gather them)."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    @property
    def cancelled(self) -> bool:
        """True once cancel() was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if cancel() was called."""
        if self._event.is_set():
            raise Cancelled("request cancelled")


@dataclass(frozen=True)
class Position:
    """A zero-based line and a column counted in the document's position encoding."""

    line: int
    character: int


@dataclass(frozen=True)
class Span:
    """A range of the document, in the document's position encoding."""

    start: Position
    end: Position


@dataclass(frozen=True)
class CompletionCandidate:
    """One ranked completion: `text` replaces `replace` in the document."""

    text: str
    probability: float
    source: str  # "pycoder", "file", ...
    kind: Literal["identifier", "keyword", "token"] = "identifier"


@dataclass
class CompletionResult:
    """The ranked list for one cursor position."""

    items: list[CompletionCandidate] = field(default_factory=list)
    replace: Span | None = None  # the typed part of the identifier
    elapsed_ms: float = 0.0


@dataclass
class InlineResult:
    """Ghost text for the rest of the line: `text` replaces `replace`."""

    text: str = ""
    replace: Span | None = None
    probability: float = 0.0
    elapsed_ms: float = 0.0


@dataclass
class EngineSettings:
    """What the engine needs to know from the user's options."""

    model_path: str | None = None  # a release folder; None means the bundled default
    max_items: int = 20
    inline: bool = True
    mid_token: MidTokenMode = "bytelevel"
    max_inline_tokens: int = 48
    # Mixture weights, tuned together on the valid split (python -m fillpoint.training.tune
    # --n 300): the file's identifier frequencies get file_weight; the CodeFill name model (a
    # `codefill/` folder inside the release) gets codefill_weight of the model side, and
    # 0 or a release without one leaves PyCoder alone there. With the 4 x 384 decoder 0.1 /
    # 0.25 gave MRR@10 0.511 at identifier starts and 0.745 inside names (the previous
    # 0.3 / 0.5: 0.491 and 0.739; the decoder alone: 0.500 and 0.709)
    file_weight: float = 0.1
    codefill_weight: float = 0.25
    # With mid_token "bytelevel": CodeFill's names join the list's byte-level search (byte-
    # level ensembling, at codefill_weight) instead of the mixture of whole names; off
    # because it ranks no better on held-out code (docs/evaluation)
    byte_ensemble: bool = False
    # Drafts for inline completion, verified in one call each (the same text as one token
    # per call): "document" drafts the tokens that followed the line's last tokens earlier in
    # the document, "table" Token Recycling's tree; "document" pays on this model, the
    # table's tree does not (`recycling.DRAFTERS`, docs/benchmarks.md)
    line_drafts: LineDrafts = "document"
    # Ghost text is the likeliest line a beam of this width finds (`lineBeam`; one model call
    # per token); 1 is greedy decoding, the only one the drafts above speed up. On held-out
    # lines a beam of 3 matched whole lines more often than greedy decoding (docs/evaluation)
    line_beam: int = 3
    # Ghost text mixes the decoder with how the document's other lines that start as the
    # cursor's line does go on (a cache model of lines): (1 - w) * P_decoder(line) +
    # w * share of those lines; 0 is the decoder alone (`engine.choose_line`). Tuned on the
    # valid split (python -m fillpoint.training.tune --lines 400): with the 4 x 384 decoder
    # 0.001 matched 114 of 400 lines, 0 and 0.03 112, 0.01 to 0.3 113, 0.9 107. Byte-level
    # ghost text is scored beside the file's lines on the healed prompt
    line_repeat_weight: float = 0.001
