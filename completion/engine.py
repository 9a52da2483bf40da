"""The completion pipeline: should we complete here -> prompt -> generate -> post-process."""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from keyword import iskeyword
from pathlib import Path
from typing import TypeVar

from . import decoding
from .bytelevel_onnx import ByteLevelDecoder
from .codefill_runtime import CodeFillRuntime
from .context import Context, build_context
from .documents import Document
from .postprocess import clean_inline
from .recycling import DRAFTERS, Recycler
from .runtime import OnnxDecoder, stopping, stops_with
from .typed_through import TypedThrough
from .types import (
    Cancelled,
    CancelToken,
    CompletionCandidate,
    CompletionResult,
    EngineError,
    EngineSettings,
    InlineResult,
    MidTokenMode,
    Position,
    Span,
)

log = logging.getLogger(__name__)

# CodeFill's scope-aware re-ranking: a top-10 candidate declared in the visible file has its
# probability multiplied by a weight that depends on its role and where it was declared.
FILE_SCORED = 12  # the file's most frequent names scored by the model at each request
CODEFILL_TOP = 20  # CodeFill names taken into the mixture
SPECULATE_TOKENS = 3  # tokens decoded to guess the next keystroke while the user pauses
# The guess leaves byte mode once one token boundary holds half the mass (ghost text: 1e-3).
# Over the benchmark's replay (in-process) the guess took 13.5 ms instead of 18.3 on
# average, and the list was ready for 105 of the 119 requests at name starts (106 at 1e-3).
GUESS_EPS = 0.5
TYPED_POOL = 100  # names kept per list for filtering as the user types on (more than shown)
INDENT_UNIT = 4  # spaces per indentation level (PEP 8) when guessing where a name starts
RERANK = {
    "attribute": {"function": 1.625, "class": 1.250, "file": 1.125},
    "variable": {"function": 1.625, "class": 1.125, "file": 1.500},
    "function": {"function": 1.125, "class": 1.625, "file": 1.500},
}


def default_model_path() -> Path:
    """The release folder that ships inside the package."""
    from importlib import resources

    return Path(str(resources.files("fillpoint.models") / "release"))


R = TypeVar("R")


def _unless_cancelled(
    cancel: CancelToken | None, call: Callable[..., R], *args: object
) -> R | None:
    """`runtime.stopping(cancel, call, *args)`, or None once it is cancelled."""
    try:
        return stopping(cancel, call, *args)
    except Cancelled:
        return None


def _stoppable(
    method: Callable[[Engine, Document, Position, CancelToken | None], R],
) -> Callable[[Engine, Document, Position, CancelToken | None], R]:
    """An engine call whose model calls stop as soon as its token is cancelled
    (`runtime.stops_with`), not at the end of the call under way."""

    @functools.wraps(method)
    def call(self: Engine, doc: Document, pos: Position, cancel: CancelToken | None = None) -> R:
        with stops_with(cancel):
            return method(self, doc, pos, cancel)

    return call


class Engine:
    """Loads the released model and answers completion requests for documents."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.error: str | None = None  # why the model could not be loaded, if it could not
        self.model_name: str = ""
        self._lm: OnnxDecoder | None = None
        self._vocab: decoding.Vocab | None = None
        self._bytelevel: ByteLevelDecoder | None = None  # None: byte-level mode heals instead
        self._lock = threading.Lock()
        self._bytelevel_lock = threading.Lock()  # the decoder keeps caches: one call at a time
        self._no_bytelevel = False
        self._caches: dict[str, decoding.PrefixCache] = {}
        self._recyclers: dict[str, Recycler] = {}  # by `line_drafts`
        self._codefill: CodeFillRuntime | None = None  # the name model, when the release has one
        self._typed = TypedThrough()
        self._side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fillpoint-codefill")

    def load(self) -> None:
        """Load (or reload) the model named by the settings; on failure set `error`, never raise."""
        folder = Path(self.settings.model_path or default_model_path()).expanduser()
        try:
            lm = OnnxDecoder(folder)
            vocab = decoding.Vocab(lm)
        except EngineError as exc:
            with self._lock:
                self._lm, self._vocab, self._bytelevel, self.model_name = None, None, None, ""
                self.error = str(exc)
            return
        codefill = None
        if self.settings.codefill_weight > 0 and (folder / "codefill" / "model.onnx").exists():
            try:
                codefill = CodeFillRuntime(folder / "codefill", threads=1)
            except EngineError as exc:  # the list still works from the decoder alone
                log.warning("CodeFill model unavailable: %s", exc)
        with self._lock:
            self._lm, self._vocab, self._bytelevel = lm, vocab, None
            self._no_bytelevel = False  # another model's tokenizer may well be readable
            self._codefill = codefill
            # one cache of the last few prompts: completion and inline prompts at one position
            # share their start; a fill-in-the-middle prompt keeps an entry of its own
            shared = decoding.PrefixCache(lm)
            self._caches = {"complete": shared, "inline": shared}
            self._recyclers = {}  # made on first use: drafters of the previous model go
            self._typed = TypedThrough()  # answers of the previous model are not reused
            self.model_name, self.error = lm.info.name, None

    @property
    def ready(self) -> bool:
        """True when a model is loaded and requests get real answers."""
        return self._lm is not None

    @property
    def codefill_ready(self) -> bool:
        """True when the release's CodeFill name model is loaded and in use."""
        return self._codefill is not None

    def _model(self) -> tuple[OnnxDecoder, decoding.Vocab] | None:
        with self._lock:
            if self._lm is None or self._vocab is None:
                return None
            return self._lm, self._vocab

    def _mode(self) -> str:
        # Byte-level mode goes through `_byte_decoder`; where that is unavailable, healing is
        # the closest correct behaviour for prompts that end inside a token.
        return "naive" if self.settings.mid_token == "naive" else "healing"

    def _byte_decoder(self, kind: str, prefix: str | None = None) -> ByteLevelDecoder | None:
        """The byte-level decoder when the settings ask for it for this kind of request
        ("complete" or "inline"), the model has one and (given the text before the cursor)
        the prompt is one byte mode takes cheaply (`ByteLevelDecoder.fits`)."""
        mode = self.settings.mid_token
        if mode != "bytelevel" and not (mode == "auto" and kind == "inline"):
            return None
        with self._lock:
            # Built on first use: it costs a few hundred ms that healing mode need not pay.
            if self._bytelevel is None and self._lm is not None and not self._no_bytelevel:
                try:
                    self._bytelevel = ByteLevelDecoder(self._lm)
                except (ValueError, EngineError) as exc:  # a tokenizer it cannot read bytes of
                    log.warning("byte-level decoding unavailable, healing instead: %s", exc)
                    self._no_bytelevel = True
            decoder = self._bytelevel
        if decoder is None or (prefix is not None and not decoder.fits(prefix)):
            return None
        decoder.keep_prompts(2 if mode == "bytelevel" else 1)
        return decoder

    @_stoppable
    def complete(
        self, doc: Document, pos: Position, cancel: CancelToken | None = None
    ) -> CompletionResult:
        """Ranked identifiers at `pos`; empty inside strings, comments or without a model."""
        t0 = time.perf_counter()
        model = self._model()
        if model is None or not doc.text.strip():
            return CompletionResult()
        ctx = build_context(doc, pos)
        if ctx.in_string_or_comment:
            return CompletionResult()
        span = Span(ctx.partial_start, ctx.position)
        head = doc.text[: ctx.offset - len(ctx.partial)]
        # Lists are kept longer than they are shown (TYPED_POOL names), so that the first
        # characters typed into a name still find it in the kept list.
        shown = self.settings.max_items
        reused = self._typed.list_for(doc.uri, head, ctx.partial)
        if reused is None and (reused := self._typed.speculated(doc.uri, doc.text, ctx.offset)):
            self._typed.remember_list(doc.uri, head, ctx.partial, reused)
        if reused is not None:
            return CompletionResult(reused[:shown], span, (time.perf_counter() - t0) * 1000)
        items = self._fresh_list(ctx, head, model, cancel)
        self._typed.remember_list(doc.uri, head, ctx.partial, items)
        return CompletionResult(items[:shown], span, (time.perf_counter() - t0) * 1000)

    def _fresh_list(
        self,
        ctx: Context,
        head: str,
        model: tuple[OnnxDecoder, decoding.Vocab],
        cancel: CancelToken | None,
    ) -> list[CompletionCandidate]:
        """The ranked list at a cursor from both models (no reuse of earlier lists), up to
        TYPED_POOL names, or more when the settings show more."""
        lm, vocab = model
        # CodeFill runs on its own thread meanwhile: its lexing and model calls overlap the
        # decoder's beam on the other core.
        named_later = self._on_side(cancel, self._codefill_names, head, ctx, cancel)
        weight = self.settings.codefill_weight
        ensemble = False  # CodeFill's names join the byte-level search instead of the mixture
        try:
            if (bytelevel := self._byte_decoder("complete", ctx.prefix)) is not None:
                names: list[tuple[str, float]] = []
                if ensemble := self.settings.byte_ensemble:
                    cut = len(ctx.partial)
                    names = [(n[cut:], p) for n, p in (named_later.result() or {}).items()]
                with self._bytelevel_lock:
                    found = exact_candidates(bytelevel, ctx, cancel, names, weight)
            else:
                cache = self._caches.get("complete")
                found = model_candidates(lm, vocab, ctx, self._mode(), cancel, cache)
        finally:
            named = named_later.result()  # never left running into the next request
        if named is None:
            raise Cancelled("request cancelled")
        if ensemble:
            named, weight = {}, 0.0  # already in the byte-level search
        pool = max(self.settings.max_items, TYPED_POOL)
        return rank(found, ctx, pool, self.settings.file_weight, named, weight)

    @_stoppable
    def prepare(self, doc: Document, pos: Position, cancel: CancelToken | None = None) -> int:
        """Run the text before `pos` through the models ahead of a request, so that a
        request after the next keystroke runs only what that keystroke added, and make the
        ghost text and the completion lists that keystroke most likely asks for; last, run
        the windows both models' prompts move to as the text grows (`warm` ahead).

        The server calls this while the user pauses; it checks `cancel` between model calls.
        Returns the prompt tokens and names run (0: the caches were warm already).
        """
        model = self._model()
        if model is None or not doc.text.strip():
            return 0
        ctx = build_context(doc, pos)
        if ctx.in_string_or_comment:
            return 0
        head = doc.text[: ctx.offset - len(ctx.partial)]
        with self._lock:
            codefill = self._codefill
        # CodeFill's prompt runs on its own thread meanwhile (the lists' CodeFill names queue
        # behind it there)
        side = [self._on_side(cancel, codefill.warm, head, cancel)] if codefill is not None else []
        try:
            ran = 0
            lm, _ = model
            cache = self._caches.get("complete")
            if cache is not None and self.settings.mid_token != "bytelevel":
                prompt = decoding.heal(lm, ctx.prefix, self._mode())
                ran += decoding.warm(lm, prompt, cache, cancel)
            lists = self._byte_decoder("complete", ctx.prefix)
            offered = self._offers_ghost(ctx)
            ghost = self._byte_decoder("inline", ctx.prefix) if offered else None
            suffix = ctx.suffix if ghost is not None else None
            if (bytelevel := lists or ghost) is not None:
                with self._bytelevel_lock:
                    ran += bytelevel.warm(ctx.prefix, suffix, lists is not None, cancel)
            # Lists, the likelier first (the user may type before all are made): the list
            # here first when the decoder expects the name to go on (a keystroke into the
            # name filters it: TypedThrough; on held-out files that filtered list ranked the
            # typed name first as often as a fresh one, 313 against 304 of 410 requests one
            # character later); then after the keystroke the decoder expects to end the name
            # (`.`, `(`, a space); then the ghost text here; then the list after the file's
            # own habit after the name, and the list here if it was not made first. The
            # ghost text used to come first, as the source of the guess: then a pause that
            # ended while it was decoded (29 ms on average) left the list unmade.
            key, goes_on = self._next_keystroke(ctx, model, cancel)
            if goes_on and not self._typed.has_list(doc.uri, head, ctx.partial):
                self.complete(doc, pos, cancel)  # the likeliest keystroke goes into the name
            if key:
                self._speculate(doc, ctx, key, model, cancel)
            if offered:  # ghost text here: typing its beginning then shows the rest at once
                self.inline(doc, pos, cancel)
            if (follower := file_follower(ctx.prefix, key)) and follower != key:
                self._speculate(doc, ctx, follower, model, cancel)
            if not self._typed.has_list(doc.uri, head, ctx.partial):
                self.complete(doc, pos, cancel)
            # least urgent: the windows the prompts move to, requests from now
            if codefill is not None:
                side.append(self._on_side(cancel, codefill.warm, head, cancel, True))
            if bytelevel is not None:
                with self._bytelevel_lock:
                    ran += bytelevel.warm(ctx.prefix, suffix, lists is not None, cancel, ahead=True)
        finally:
            futures.wait(side)  # never left running into the next request
        side_ran = [done.result() for done in side]
        if None in side_ran:
            raise Cancelled("request cancelled")
        return ran + sum(side_ran)

    def _on_side(
        self, cancel: CancelToken | None, call: Callable[..., R], *args: object
    ) -> futures.Future[R | None]:
        """`call(*args)` on the CodeFill thread, its model calls stopped by `cancel`
        (`runtime.stopping`). Once cancelled, its result is None rather than a Cancelled
        exception, which the caller raises afresh: an exception kept in the future would
        hold the waiting frame, and the arrays in it, in a reference cycle (frame, future,
        exception, traceback, frame) until the garbage collector ran."""
        return self._side.submit(_unless_cancelled, cancel, call, *args)

    def _offers_ghost(self, ctx: Context) -> bool:
        """Whether ghost text is offered at this cursor: it is on, and the cursor is not
        before identifier characters (ghost text would split a word)."""
        return self.settings.inline and not _inside_word(ctx.line_suffix)

    def _next_keystroke(
        self,
        ctx: Context,
        model: tuple[OnnxDecoder, decoding.Vocab],
        cancel: CancelToken | None,
    ) -> tuple[str, bool]:
        """The character the decoder expects to end the name at the cursor ("" when none,
        or no name to start after it: indentation that is not yet a whole number of
        levels), and whether it expects the name to go on first.

        When it expects the name to go on, the guess is the character its continuation
        ends with: if the user ends the name here instead, that is the likeliest keystroke
        (`def heapify` + `(`). The guess reads the decoder's first few tokens (`_ahead`),
        not the whole ghost text: `prepare` makes the lists first, then the ghost text.
        """
        ahead = self._ahead(ctx, model, cancel)
        if ahead is None:
            return "", False  # byte-level lists keep caches of their own
        run = NAME_RUN.match(ahead).end()  # the name characters it continues with
        goes_on = run > 0
        if goes_on and not _name_char(ctx.prefix[-1:]):
            return "", True  # a name starts here: the list at the cursor is the guess
        key = ahead[run : run + 1]
        if key.isspace() and (ctx.prefix[-1:].isspace() or not ctx.prefix):
            # inside indentation: a name starts after the space that completes a level
            indent = ctx.line_prefix
            if key != " " or indent.strip(" ") or (len(indent) + 1) % INDENT_UNIT:
                return "", goes_on
        return key, goes_on

    def _ahead(
        self,
        ctx: Context,
        model: tuple[OnnxDecoder, decoding.Vocab],
        cancel: CancelToken | None,
    ) -> str | None:
        """The first SPECULATE_TOKENS tokens the decoder expects at the cursor: where ghost
        text is offered, the ghost text's search cut short (leaving byte mode at GUESS_EPS;
        the rows it runs stay in the scorer's cache for the ghost text made later), else
        greedily from the healed line prompt. None where there is nothing to read a guess
        from cheaply (byte-level lists without ghost text)."""
        if self._offers_ghost(ctx) and (ghost := self._byte_decoder("inline", ctx.prefix)):
            width = self.settings.line_beam
            with self._bytelevel_lock:
                return ghost.complete_line(
                    ctx.prefix, ctx.suffix, SPECULATE_TOKENS, cancel, width, GUESS_EPS
                )
        if self._byte_decoder("complete", ctx.prefix) is not None:
            return None
        lm, vocab = model
        prompt, cache = self._line_prompt(lm, ctx), self._caches.get("inline")
        return decoding.greedy_line(lm, vocab, prompt, SPECULATE_TOKENS, cancel, cache)[0]

    def _speculate(
        self,
        doc: Document,
        ctx: Context,
        key: str,
        model: tuple[OnnxDecoder, decoding.Vocab],
        cancel: CancelToken | None,
    ) -> None:
        """Make the list for the document as it will be after typing `key` at the cursor:
        a request there is then answered without a model call."""
        typed = doc.copy()
        typed.apply_change(key, Span(ctx.position, ctx.position))
        if self._typed.speculated(doc.uri, typed.text, ctx.offset + 1) is not None:
            return
        after = build_context(typed, typed.position_at(ctx.offset + 1))
        if after.in_string_or_comment:
            return
        head = typed.text[: after.offset - len(after.partial)]
        items = self._fresh_list(after, head, model, cancel)
        self._typed.remember_speculated(doc.uri, typed.text, after.offset, items)

    def _line_prompt(self, lm: OnnxDecoder, ctx: Context) -> decoding.Prompt:
        """The prompt of ghost text at a cursor in this engine's mid-token mode."""
        return line_prompt(lm, ctx, self._mode())

    def _recycler(self, lm: OnnxDecoder, kind: str) -> Recycler | None:
        """The drafter `kind` of `recycling.DRAFTERS` for `lm`, made on first use and kept:
        what it learns (the table, the last line) carries across requests. None for "off"
        or a graph without tree inputs."""
        if kind not in DRAFTERS or not lm.tree_inputs:
            return None
        with self._lock:
            recycler = self._recyclers.get(kind)
            if recycler is None or recycler.lm is not lm:
                recycler = self._recyclers[kind] = Recycler(lm, **DRAFTERS[kind])
            return recycler

    def _drafter(self, lm: OnnxDecoder | None) -> Recycler | None:
        """The drafter of greedy ghost text (`_recycler` of the settings' `line_drafts`), None
        without `lm` (ghost text that is not decoded greedily). A table of Token Recycling's
        learns from every prompt the inline cache runs while it is the drafter in use, and
        stops watching that cache when it is not (its prefills then skip the output head)."""
        recycler = None if lm is None else self._recycler(lm, self.settings.line_drafts)
        if (cache := self._caches.get("inline")) is not None:
            for other in self._recyclers.values():
                if other.table is not None:
                    (cache.watch if other is recycler else cache.unwatch)(other.table.update)
        return recycler

    def _codefill_names(
        self, head: str, ctx: Context, cancel: CancelToken | None = None
    ) -> dict[str, float]:
        """CodeFill's next-name probabilities for the identifier being typed (before re-ranking:
        `rank` applies the scope weights once to the mixture)."""
        with self._lock:
            codefill = self._codefill
        return {} if codefill is None else codefill_names(codefill, head, ctx, cancel)

    @_stoppable
    def inline(
        self, doc: Document, pos: Position, cancel: CancelToken | None = None
    ) -> InlineResult:
        """Ghost text for the rest of the line at `pos`; empty when there is nothing to offer."""
        t0 = time.perf_counter()
        model = self._model()
        if model is None or not self.settings.inline or not doc.text.strip():
            return InlineResult()
        ctx = build_context(doc, pos)
        if ctx.in_string_or_comment or not self._offers_ghost(ctx):
            return InlineResult()
        before = doc.text[: ctx.offset]
        reused = self._typed.ghost_for(doc.uri, before)
        if reused is not None:
            span = Span(ctx.position, ctx.position)
            return InlineResult(reused, span, 0.0, (time.perf_counter() - t0) * 1000)
        lm, vocab = model
        cache, n = self._caches.get("inline"), self.settings.max_inline_tokens
        prompt = None
        bytelevel = self._byte_decoder("inline", ctx.prefix)
        greedy = bytelevel is None and self.settings.line_beam <= 1
        recycler = self._drafter(lm if greedy else None)
        if bytelevel is not None:
            with self._bytelevel_lock:
                text = bytelevel.complete_line(
                    ctx.prefix, ctx.suffix, n, cancel, self.settings.line_beam
                )
            mean_logp = -math.inf  # the byte-level search does not score the line
        else:
            prompt = self._line_prompt(lm, ctx)
            if self.settings.line_beam > 1:
                text, mean_logp = decoding.beam_line(
                    lm, vocab, prompt, self.settings.line_beam, n, cancel, cache
                )
            elif recycler is not None:
                text, mean_logp = recycler.greedy_line(vocab, prompt, n, cancel, cache)
            else:
                text, mean_logp = decoding.greedy_line(lm, vocab, prompt, n, cancel, cache)
        weight = self.settings.line_repeat_weight
        if weight > 0 and (repeats := line_repeats(ctx)):
            # the byte-level line is scored with the others on the healed prompt
            prompt = prompt or self._line_prompt(lm, ctx)
            rests = repeat_candidates(text, repeats)
            lines = decoding.score_lines(lm, vocab, prompt, rests, n, cancel, cache)
            best = choose_line(text, lines, repeats, weight)
            if best != text:  # the file's line: its own mean log-prob per piece
                total = next(c.logp for c in lines if c.continuation == best)
                text, mean_logp = best, total / len(lm.encode(prompt.need + best))
        text = clean_inline(ctx.line_prefix, text, ctx.line_suffix)
        self._typed.remember_ghost(doc.uri, before, text)
        if not text:
            return InlineResult(elapsed_ms=(time.perf_counter() - t0) * 1000)
        return InlineResult(
            text,
            Span(ctx.position, ctx.position),
            math.exp(mean_logp),
            (time.perf_counter() - t0) * 1000,
        )


def line_prompt(lm: OnnxDecoder, ctx: Context, mode: MidTokenMode) -> decoding.Prompt:
    """The prompt of ghost text at a cursor: healed (or not, in `mode`), with the code after
    it (FIM)."""
    return decoding.fim_prompt(lm, decoding.heal(lm, ctx.prefix, mode), ctx.suffix)


REPEATS = 4  # the most frequent ways the document goes on after a line's start, scored


def line_repeats(ctx: Context) -> Counter[str]:
    """How the document's other lines that start as the cursor's line does (indentation
    aside) go on after that start, and how often each: a cache model of lines. Empty where
    the cursor's line has nothing typed or code after the cursor."""
    key = ctx.line_prefix.lstrip()
    if not key or ctx.line_suffix.strip():
        return Counter()
    # the other lines of the context windows (a line longer than the window has none)
    before = ctx.prefix[: max(0, len(ctx.prefix) - len(ctx.line_prefix))]
    after = ctx.suffix[len(ctx.line_suffix) :]
    pattern = re.compile(rf"^[ \t]*{re.escape(key)}(.*\S)", re.MULTILINE)
    return Counter(m.group(1) for text in (before, after) for m in pattern.finditer(text))


def repeat_candidates(decoded: str, repeats: Counter[str]) -> list[str]:
    """The lines to score: the document's `REPEATS` most frequent and the decoded one."""
    found = [rest for rest, _ in repeats.most_common(REPEATS)]
    return found + [decoded] if decoded.strip() and decoded not in found else found


def choose_line(
    decoded: str, scored: Sequence[decoding.Candidate], repeats: Counter[str], weight: float
) -> str:
    """The line with the most probability under (1 - weight) * decoder + weight * document,
    where the document gives each way a line went on there its share of them all. The
    decoder's score of a line is its probability to the line break (`score_lines`)."""
    total = sum(repeats.values())

    def mixture(c: decoding.Candidate) -> float:
        return (1 - weight) * math.exp(c.logp) + weight * repeats[c.continuation] / total

    best = max(scored, key=mixture, default=None)
    return decoded if best is None else best.continuation


FOLLOWER_SPAN = 20_000  # characters before the cursor searched by `file_follower`


def file_follower(prefix: str, exclude: str) -> str:
    """The character other than `exclude` that most often follows, earlier in the file, the
    name at the end of `prefix` (after a non-name character: that character) and ends it;
    "" when there is none. A second guess at the next keystroke, from the file's habits."""
    text = prefix[-FOLLOWER_SPAN:]
    m = re.search(r"\w+\Z", text)
    if m is not None:
        pattern = rf"(?<!\w){re.escape(m.group())}(\W)"
    elif text:
        pattern = rf"{re.escape(text[-1])}(.)"
    else:
        return ""
    seen = Counter(found.group(1) for found in re.finditer(pattern, text[: len(text) - 1]))
    for char, _ in seen.most_common():
        if char != exclude and char != "\n" and not _name_char(char):
            return char
    return ""


def _name_char(char: str) -> bool:
    """`char` can be part of an identifier ("" cannot)."""
    return char.isalnum() or char == "_"


def _inside_word(line_suffix: str) -> bool:
    """The cursor sits before identifier characters: ghost text would split a word."""
    return _name_char(line_suffix[:1])


NAME_RUN = re.compile(r"\w*")
OBJECT = re.compile(r"([^\W\d]\w*)[ \t]*\.[ \t]*\w*\Z")  # `name.` (+ typed part) at the cursor


def attribute_counts(text: str, obj: str | None) -> Counter[str]:
    """How often the file uses each name after `obj.` (after any dot when obj is unknown)."""
    if obj:
        pattern = rf"(?<![\w.]){re.escape(obj)}[ \t]*\.[ \t]*([^\W\d]\w*)"
    else:
        pattern = r"\.[ \t]*([^\W\d]\w*)"
    return Counter(re.findall(pattern, text))


def model_candidates(
    lm: OnnxDecoder,
    vocab: decoding.Vocab,
    ctx: Context,
    mode: str,
    cancel: CancelToken | None = None,
    cache: decoding.PrefixCache | None = None,
) -> list[decoding.Candidate]:
    """The beam's identifiers plus the file's frequent names, all scored by the model.

    Scoring the names the beam missed lets the mixture in `rank` compare like with like.
    """
    prompt = decoding.heal(lm, ctx.prefix, mode)
    pool = sorted(file_pool(ctx).items(), key=lambda kv: kv[1], reverse=True)
    names = [n[len(ctx.partial) :] for n, _ in pool[:FILE_SCORED]]
    found, scored = decoding.identifier_candidates(
        lm, vocab, prompt, names, top=10, cancel=cancel, cache=cache
    )
    have = {c.continuation for c in found}
    return found + [c for c in scored if c.continuation not in have]


def exact_candidates(
    bytelevel: ByteLevelDecoder,
    ctx: Context,
    cancel: CancelToken | None = None,
    names: Sequence[tuple[str, float]] = (),
    weight: float = 0.0,
) -> list[decoding.Candidate]:
    """The byte-level search's 10 likeliest identifier continuations at the cursor, as the
    decoder's candidates for `rank` (`names`/`weight`: byte-level ensembling)."""
    found = bytelevel.complete_identifier(
        ctx.prefix, k=10, cancel=cancel, names=names, weight=weight
    )
    return [decoding.Candidate(y, math.log(p)) for y, p in found if p > 0]


def file_pool(ctx: Context) -> dict[str, float]:
    """The file's names that could complete the typed text, with how often the file uses them."""
    if ctx.after_dot:
        # after `json.` the names the file uses after `json.` are candidates, not `self.x`'s
        found = OBJECT.search(ctx.line_prefix)
        pool = attribute_counts(ctx.prefix + ctx.suffix, found.group(1) if found else None)
    else:
        pool = ctx.identifiers
    return {
        name: float(n)
        for name, n in pool.items()
        if name.startswith(ctx.partial) and name != ctx.partial and not name[0].isdigit()
    }


def codefill_names(
    codefill: CodeFillRuntime, head: str, ctx: Context, cancel: CancelToken | None = None
) -> dict[str, float]:
    """CodeFill's top names after `head` (the text before the partial identifier), with their
    probabilities before the scope weights: `rank` applies those once, to the mixture."""
    found = codefill.next_names(head, ctx.partial, None, CODEFILL_TOP, ctx.identifiers, cancel)
    return {c.name: c.probability for c in found}


def rank(
    found: list[decoding.Candidate],
    ctx: Context,
    max_items: int,
    file_weight: float,
    named: dict[str, float] | None = None,
    codefill_weight: float = 0.0,
) -> list[CompletionCandidate]:
    """Mix the models' candidates with the file's identifiers, then re-rank by scope.

    p(w) = (1 - file_weight) * p_model(w) + file_weight * p_file(w), where p_file is the
    frequency of `w` among the file's identifiers that start with the typed text (a cache
    model) and p_model = (1 - codefill_weight) * p_pycoder + codefill_weight * p_codefill,
    each normalised over its own candidates (a side without candidates gives its share to
    the others); names declared in the file are then boosted by CodeFill's scope weights.
    """
    pycoder: dict[str, float] = {}
    if found:
        top = max(c.logp for c in found)
        for c in found:
            if c.continuation:  # an empty continuation is the typed text itself
                pycoder[ctx.partial + c.continuation] = math.exp(c.logp - top)
    codefill = {
        w: p
        for w, p in (named or {}).items()
        if codefill_weight > 0 and w.startswith(ctx.partial) and w != ctx.partial
    }
    model = _mix(pycoder, codefill, codefill_weight)
    scores = _mix(model, file_pool(ctx), file_weight)
    for name in scores:
        decl = ctx.scopes.get(name)
        if decl is not None:
            scores[name] *= RERANK[decl.role][decl.where]
    norm = sum(scores.values()) or 1.0
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:max_items]
    return [
        CompletionCandidate(
            name,
            p / norm,
            "pycoder" if name in pycoder else "codefill" if name in codefill else "file",
            "keyword" if iskeyword(name) else "identifier",
        )
        for name, p in ranked
    ]


def _mix(a: dict[str, float], b: dict[str, float], b_weight: float) -> dict[str, float]:
    """(1 - b_weight) * a + b_weight * b, each normalised first; an empty side drops out."""
    a_total, b_total = sum(a.values()), sum(b.values())
    wa = (1.0 - b_weight) if b_total > 0 else 1.0
    wb = b_weight if a_total > 0 else 1.0
    out = {w: wa * p / a_total for w, p in a.items()} if a_total > 0 else {}
    if b_total > 0:
        for w, p in b.items():
            out[w] = out.get(w, 0.0) + wb * p / b_total
    return out
