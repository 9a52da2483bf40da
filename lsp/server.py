"""Wiring only: LSP messages in, document store and engine calls, lsprotocol results out."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any, Literal, Protocol

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from fillpoint.completion.documents import Document, DocumentStore
from fillpoint.completion.types import (
    Cancelled,
    CancelToken,
    CompletionResult,
    EngineError,
    EngineSettings,
    InlineResult,
    Position,
    Span,
)

from . import convert
from .options import SECTION, Options, format_problems, parse_options

log = logging.getLogger(__name__)

NAME = "fillpoint"
# Completion is worth offering at CodeFill's cardinal points. As trigger characters we
# take the ones an identifier usually follows directly: `.`, `(`, `[`, `{`. Not space:
# it would fire after every word, in comments and strings too, and the next keystroke
# closes the list anyway. Not `,` or binary operators: PEP 8 puts a space after them.
# Keyword points (`return `, `in `, `if `) are served by inline completion at once and
# by the editor's own word trigger from the first letter on (lists are incomplete).
TRIGGER_CHARACTERS = [".", "(", "[", "{"]
PYTHON_SUFFIXES = (".py", ".pyi")
CLIENT_REPLY_TIMEOUT_S = 10.0  # a client that never answers must not stall model loading
STATUS = "fillpoint/status"  # notification: model loading, ready or failed (for status bars)
# Quiet time after an edit before the prefetch starts (the prefetch option): the edits that
# arrive together are applied first. Short: the next edit or request stops a prefetch within
# a graph node of its model call under way (`runtime.stops_with`), and what it ran before
# that call stays in the caches.
PREFETCH_DELAY_S = 0.002

Kind = Literal["complete", "inline"]


class EngineLike(Protocol):
    """What the server needs from `fillpoint.completion.engine.Engine` (fakes in tests)."""

    settings: EngineSettings
    error: str | None
    model_name: str

    def load(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    def complete(self, doc: Document, pos: Position, cancel: CancelToken) -> CompletionResult: ...

    def inline(self, doc: Document, pos: Position, cancel: CancelToken) -> InlineResult: ...

    def prepare(self, doc: Document, pos: Position, cancel: CancelToken) -> int: ...


EngineFactory = Callable[[EngineSettings], EngineLike]


def default_engine_factory(settings: EngineSettings) -> EngineLike:
    """The real engine; imported here so onnxruntime loads in the loading thread, not first."""
    from fillpoint.completion.engine import Engine

    return Engine(settings)


def server_version() -> str:
    """The installed distribution's version."""
    try:
        return metadata.version(NAME)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _prefer_utf8(capabilities: lsp.ClientCapabilities) -> None:
    """Put UTF-8 first among the client's position encodings, so pygls picks it if offered."""
    # UTF-8 columns are byte offsets, which tree-sitter uses too; UTF-16 stays the default.
    general = capabilities.general
    if general is None or not general.position_encodings:
        return
    offered = list(general.position_encodings)
    if lsp.PositionEncodingKind.Utf8 in offered:
        offered.remove(lsp.PositionEncodingKind.Utf8)
        general.position_encodings = [lsp.PositionEncodingKind.Utf8, *offered]


class FillpointProtocol(LanguageServerProtocol):
    """pygls' protocol with fillpoint's choice of position encoding."""

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams) -> Any:
        """Negotiate the encoding, then let pygls initialize as usual."""
        _prefer_utf8(params.capabilities)
        return (yield from super().lsp_initialize(params))

    def structure_message(self, data: dict[str, Any]) -> Any:
        """pygls' deserializer; a request it cannot read still gets an error response."""
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            # pygls only logs it, and the client would wait for this request forever.
            if "id" in data and "method" in data:
                self._send_response(data["id"], error=exc.to_response_error())
            raise

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: lsp.DidChangeTextDocumentParams) -> Any:
        """Update pygls' workspace from a copy, then the store from the client's own ranges."""
        # pygls clamps a range end past the line end *in place* (to one unit short of the
        # end), which made the store apply a different edit than the client sent.
        for change in params.content_changes:
            try:
                self.workspace.update_text_document(params.text_document, copy.deepcopy(change))
            except Exception:  # pygls' copy is unused here; it must not stop the store's update
                log.debug("pygls workspace update failed", exc_info=True)
        if (handler := self.fm.features.get(lsp.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None


def _is_python(doc: Document) -> bool:
    """A document the editor calls Python (or, with no language id, a .py/.pyi file)."""
    # The language id wins over the file name: untitled buffers and notebook cells have
    # no .py name, and a user who switches a file to Python mode wants completions.
    if doc.language_id:
        return doc.language_id == "python"
    return doc.uri.lower().endswith(PYTHON_SUFFIXES)


def _cursor_after(doc: Document | None, changes: list[tuple[Span | None, str]]) -> Position | None:
    """Where the cursor most likely is after `changes`: the end of the last inserted text
    (None for a whole-document replacement, which says nothing about the cursor)."""
    span, text = changes[-1] if changes else (None, "")
    if doc is None or span is None:
        return None
    return doc.position_at(doc.offset_at(span.start) + len(text))


def skip_reason(engine: EngineLike | None, doc: Document | None, pos: Position) -> str | None:
    """Why a request gets an empty result without calling the engine, or None."""
    if engine is None or not engine.ready:
        return "no model is loaded"
    if doc is None:
        return "the document is not open"
    if not _is_python(doc):
        return f"not a Python document ({doc.language_id or doc.uri})"
    if not doc.text.strip():
        return "the document is empty"
    # offset_at clamps, so a position that does not survive the round trip lies outside.
    if pos.line < 0 or pos.character < 0 or doc.position_at(doc.offset_at(pos)) != pos:
        return f"position {pos.line}:{pos.character} is outside the document"
    return None


def _run_checked(call: Callable[..., Any], doc: Document, pos: Position, token: CancelToken) -> Any:
    """One engine call on the inference thread, skipped if cancelled while queued."""
    token.check()
    return call(doc, pos, token)


# Freed memory goes back to the system only while the server holds more than this. Each
# give-back makes the next model calls fault their pages in again: after every idle work
# that cost completion p95 about 5 ms in the in-process replay (22.8-23.4 against 18.0-18.6
# ms with none); through the server, with none or once every 2 s at most, the benchmark's
# peak RSS went over 300 MiB in five runs of seven, while above 250 MiB it stayed at 281-289
# MiB with p95 as low as with those (docs/benchmarks.md).
GIVE_BACK_ABOVE_MIB = 250


def idle_work(engine: EngineLike, doc: Document, pos: Position, token: CancelToken) -> int:
    """The engine's idle work at `pos`; once all of it is done, the heap pages its arrays
    left free go back to the system if the server holds more than GIVE_BACK_ABOVE_MIB
    (`runtime.give_back_free_memory`): its threads allocate from a few malloc arenas, which
    would otherwise keep them."""
    ran = engine.prepare(doc, pos, token)
    from fillpoint.completion.runtime import give_back_free_memory  # imports onnxruntime

    give_back_free_memory(GIVE_BACK_ABOVE_MIB)
    return ran


def _create_and_load(factory: EngineFactory, settings: EngineSettings) -> tuple[Any, str | None]:
    """A loaded engine and None, or None and why it could not be loaded (never raises)."""
    try:
        engine = factory(settings)
        engine.load()
    except Exception:  # load() never raises by contract; this catches bugs and import errors
        return None, traceback.format_exc()
    if engine.error or not engine.ready:
        return None, engine.error or "the engine is not ready after loading"
    return engine, None


async def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a function that never raises in a daemon thread, so exit never waits for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any) -> None:
        if not done.done():
            done.set_result(result)

    def target() -> None:
        result = fn(*args)
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is exiting
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=target, name="fillpoint-load", daemon=True).start()
    return await done


class FillpointServer(LanguageServer):
    """The language server and the state of one session."""

    def __init__(self, engine_factory: EngineFactory) -> None:
        super().__init__(
            NAME,
            server_version(),
            text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
            protocol_cls=FillpointProtocol,
        )
        self.engine_factory = engine_factory
        self.engine: EngineLike | None = None  # set only once a model has loaded
        self.options = Options()
        self.store = DocumentStore()
        self.pending_problems: list[str] = []
        self.shutdown_requested = False  # decides the exit status (LSP: 1 without shutdown)
        self._load_generation = 0
        self.load_failed = False  # the last load failed: a settings change retries it
        self._inflight: dict[tuple[str, Kind], CancelToken] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # One inference thread: the model already uses the cores, and superseding keeps
        # the queue short, so a second worker would only make both requests slower.
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fillpoint-infer")
        self._prefetch_timer: asyncio.TimerHandle | None = None
        self._prefetch_token: CancelToken | None = None
        self._resume_prefetch = False  # a request cut idle work: it resumes after the requests

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine in the background, keeping a reference until it finishes."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def show(self, kind: lsp.MessageType, message: str) -> None:
        """A message for the user (window/showMessage)."""
        self.window_show_message(lsp.ShowMessageParams(type=kind, message=message))

    def log_client(self, level: int, message: str) -> None:
        """Log to stderr and, at or above the logLevel option, to the editor's output."""
        log.log(level, message)
        if level >= self.options.python_log_level:
            kind = convert.message_type(level)
            self.window_log_message(lsp.LogMessageParams(type=kind, message=message))

    def report_problems(self, problems: list[str]) -> None:
        """Tell the user which options were ignored."""
        if problems:
            self.show(lsp.MessageType.Warning, format_problems(problems))
            self.log_client(logging.WARNING, format_problems(problems))

    def apply_options(self, raw: Any) -> list[str]:
        """Take new options, reloading the model if its path changed; returns the problems."""
        options, problems = parse_options(raw)
        previous, self.options = self.options, options
        logging.getLogger(NAME).setLevel(options.python_log_level)
        if self.engine is not None:
            self.engine.settings = options.to_engine_settings()
        # A failed load is retried on any settings change, so fixing the files and saving
        # the settings (workspace/didChangeConfiguration) recovers without a restart.
        changed = options.modelPath != previous.modelPath or self.load_failed
        if changed and self._load_generation > 0:
            self.start_loading()
        self.log_client(logging.INFO, f"settings applied: {options}")
        return problems

    async def pull_and_apply_options(self, settings: Any) -> None:
        """Apply pushed settings, or pull the `fillpoint` section when none were pushed."""
        section = settings.get(SECTION) if isinstance(settings, dict) else None
        if section is None:
            workspace = self.client_capabilities.workspace
            if workspace is None or not workspace.configuration:
                return
            request = lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section=SECTION)])
            try:
                reply = await asyncio.wait_for(
                    self.workspace_configuration_async(request), CLIENT_REPLY_TIMEOUT_S
                )
            except (JsonRpcException, TimeoutError) as exc:
                self.log_client(logging.WARNING, f"could not read the settings: {exc!r}")
                return
            section = reply[0] if reply else None
        self.report_problems(self.apply_options(section))

    def start_loading(self) -> None:
        """Load the model for the current options in the background."""
        self._load_generation += 1
        self.spawn(self._load(self._load_generation, self.options.to_engine_settings()))

    async def _begin_progress(self, token: str, title: str) -> bool:
        """Start a work-done progress bar if the client supports one."""
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return False
        try:
            await asyncio.wait_for(
                self.work_done_progress.create_async(token), CLIENT_REPLY_TIMEOUT_S
            )
        except (JsonRpcException, TimeoutError) as exc:
            self.log_client(logging.DEBUG, f"no progress bar: {exc!r}")
            return False
        self.work_done_progress.begin(token, lsp.WorkDoneProgressBegin(title=title))
        return True

    async def _load(self, generation: int, settings: EngineSettings) -> None:
        """Load a model with a progress bar; report a failure once and keep running."""
        where = settings.model_path or "the bundled model"
        loading = asyncio.ensure_future(
            _in_daemon_thread(_create_and_load, self.engine_factory, settings)
        )
        self.protocol.notify(STATUS, {"state": "loading", "message": f"loading {where}"})
        token = f"fillpoint/load/{uuid.uuid4()}"
        progress = await self._begin_progress(token, f"fillpoint: loading {where}")
        try:
            engine, error = await loading
        finally:
            if progress:
                self.work_done_progress.end(token, lsp.WorkDoneProgressEnd())
        if generation != self._load_generation:
            return  # a newer load (or shutdown) superseded this one
        self.load_failed = engine is None
        if engine is None:
            self.engine = None
            summary = (error or "").strip().splitlines()[-1:] or ["unknown error"]
            self.show(
                lsp.MessageType.Error,
                f"fillpoint: could not load the model from {where}: {summary[0]}. "
                "Completions are off; see the output log for details.",
            )
            self.log_client(logging.ERROR, f"model loading failed for {where}:\n{error}")
            self.protocol.notify(STATUS, {"state": "error", "message": summary[0]})
            return
        engine.settings = self.options.to_engine_settings()  # options may have changed
        self.engine = engine
        self.log_client(logging.INFO, f"model {engine.model_name or where} loaded")
        self.protocol.notify(STATUS, {"state": "ready", "model": engine.model_name or where})

    async def run_engine(
        self, kind: Kind, uri: str, lsp_pos: lsp.Position
    ) -> CompletionResult | InlineResult | None:
        """Run one engine call off the event loop; None means an empty result."""
        engine, doc, pos = self.engine, self.store.snapshot(uri), convert.position(lsp_pos)
        reason = "the server is shutting down" if self.shutdown_requested else None
        reason = reason or skip_reason(engine, doc, pos)
        if reason is not None or engine is None or doc is None:
            self.log_client(logging.DEBUG, f"{kind} at {uri}: {reason}")
            return None
        # A request goes before idle work; idle work it cuts resumes at its cursor once the
        # requests in flight are answered and no edit came meanwhile (`_resume_prefetch`).
        self._resume_prefetch |= self.cancel_prefetch()
        key = (uri, kind)
        if (older := self._inflight.get(key)) is not None:
            older.cancel()  # a newer request for the same document supersedes it
        token = self._inflight[key] = CancelToken()
        call = engine.complete if kind == "complete" else engine.inline
        try:
            if self.options.debounceMs:
                await asyncio.sleep(self.options.debounceMs / 1000)
            token.check()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._inference, _run_checked, call, doc, pos, token)
        except asyncio.CancelledError:
            token.cancel()  # $/cancelRequest cancelled this task: stop the worker as well
            raise
        except Cancelled:
            return None
        except EngineError as exc:
            self.log_client(logging.WARNING, f"{kind} failed at {uri}: {exc}")
            return None
        except Exception:  # an engine bug costs this request's result, not the server
            self.log_client(logging.ERROR, f"{kind} failed at {uri}:\n{traceback.format_exc()}")
            return None
        finally:
            if self._inflight.get(key) is token:
                del self._inflight[key]
            if self._resume_prefetch and not self._inflight:
                self._resume_prefetch = False
                now = self.store.get(uri)  # the version only: no copy of the document
                if now is not None and now.version == doc.version and not token.cancelled:
                    self.schedule_prefetch(uri, pos)

    def schedule_prefetch(self, uri: str, pos: Position) -> None:
        """After an edit (or requests that cut idle work short), warm the models' caches for
        a request at `pos` once the user pauses (PREFETCH_DELAY_S without another edit or
        request)."""
        self.cancel_prefetch()
        if self.options.prefetch and self.engine is not None and not self.shutdown_requested:
            loop = asyncio.get_running_loop()
            self._prefetch_timer = loop.call_later(PREFETCH_DELAY_S, self._start_prefetch, uri, pos)

    def cancel_prefetch(self) -> bool:
        """Drop the pending prefetch; a running one stops inside its current model call.
        Returns whether there was one."""
        cut = self._prefetch_timer is not None or self._prefetch_token is not None
        if self._prefetch_timer is not None:
            self._prefetch_timer.cancel()
            self._prefetch_timer = None
        if self._prefetch_token is not None:
            self._prefetch_token.cancel()
            self._prefetch_token = None
        return cut

    def _start_prefetch(self, uri: str, pos: Position) -> None:
        self._prefetch_timer = None
        engine, doc = self.engine, self.store.snapshot(uri)
        if self._inflight or self.shutdown_requested or engine is None:
            return  # requests are running: they warm the caches themselves
        if skip_reason(engine, doc, pos) is not None or doc is None:
            return
        token = self._prefetch_token = CancelToken()
        self.spawn(self._prefetch(engine, doc, pos, token))

    async def _prefetch(
        self, engine: EngineLike, doc: Document, pos: Position, token: CancelToken
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            work = functools.partial(idle_work, engine)
            await loop.run_in_executor(self._inference, _run_checked, work, doc, pos, token)
        except Cancelled:  # superseded by an edit or a request
            pass
        except Exception:  # idle work must never cost the server (nor a shut-down executor)
            log.debug("prefetch failed at %s", doc.uri, exc_info=True)
        finally:
            if self._prefetch_token is token:
                self._prefetch_token = None

    def cancel_all(self, uri: str | None = None) -> None:
        """Cancel the running engine calls (of one document, or all)."""
        for (doc_uri, _), token in list(self._inflight.items()):
            if uri is None or doc_uri == uri:
                token.cancel()

    def stop(self) -> None:
        """Stop work for shutdown: cancel calls, ignore loads still running."""
        self.shutdown_requested = True
        self._load_generation += 1
        self.cancel_prefetch()
        self.cancel_all()
        self._inference.shutdown(wait=False, cancel_futures=True)


def create_server(engine_factory: EngineFactory | None = None) -> FillpointServer:
    """A fillpoint language server; tests pass a fake engine factory."""
    server = FillpointServer(engine_factory or default_engine_factory)

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: FillpointServer, params: lsp.InitializeParams) -> None:
        encoding = ls.workspace.position_encoding or lsp.PositionEncodingKind.Utf16
        ls.store = DocumentStore(getattr(encoding, "value", encoding))
        ls.pending_problems = ls.apply_options(params.initialization_options)

    @server.feature(lsp.INITIALIZED)
    def initialized(ls: FillpointServer, params: lsp.InitializedParams) -> None:
        ls.report_problems(ls.pending_problems)
        ls.start_loading()

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: FillpointServer, params: lsp.DidChangeConfigurationParams
    ) -> None:
        ls.spawn(ls.pull_and_apply_options(params.settings))

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: FillpointServer, params: lsp.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        ls.store.open(item.uri, item.text, item.version, item.language_id)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: FillpointServer, params: lsp.DidChangeTextDocumentParams) -> None:
        doc = params.text_document
        changes = convert.content_changes(params.content_changes)
        if not ls.store.change(doc.uri, doc.version, changes):
            ls.log_client(logging.DEBUG, f"change to a document that is not open: {doc.uri}")
        elif (cursor := _cursor_after(ls.store.snapshot(doc.uri), changes)) is not None:
            ls.schedule_prefetch(doc.uri, cursor)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: FillpointServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.cancel_all(params.text_document.uri)
        ls.store.close(params.text_document.uri)

    @server.feature(
        lsp.TEXT_DOCUMENT_COMPLETION,
        lsp.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS, resolve_provider=False),
    )
    async def completion(ls: FillpointServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        result = await ls.run_engine("complete", params.text_document.uri, params.position)
        if not isinstance(result, CompletionResult):
            return convert.empty_completion_list()
        cursor = convert.position(params.position)
        return convert.completion_list(result, cursor, limit=ls.options.maxItems)

    @server.feature(lsp.TEXT_DOCUMENT_INLINE_COMPLETION, lsp.InlineCompletionOptions())
    async def inline_completion(
        ls: FillpointServer, params: lsp.InlineCompletionParams
    ) -> lsp.InlineCompletionList:
        if not ls.options.inline:
            return convert.empty_inline_list()
        result = await ls.run_engine("inline", params.text_document.uri, params.position)
        if not isinstance(result, InlineResult):
            return convert.empty_inline_list()
        return convert.inline_list(result, convert.position(params.position))

    @server.feature(lsp.SHUTDOWN)
    def shutdown(ls: FillpointServer, params: None) -> None:
        ls.stop()

    return server
