"""Test clients for a server subprocess: every wait is bounded, nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest_lsp
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pygls.protocol import default_converter
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

HERE = Path(__file__).resolve().parent
SERVE = [sys.executable, "-m", "fillpoint.lsp", "serve"]
SERVE_FAKE = [sys.executable, str(HERE / "lsp_fake_server.py")]
STEP_TIMEOUT_S = 30.0  # one protocol step; generous for a loaded 2-core machine
RECORDED = (
    lsp.WINDOW_SHOW_MESSAGE,
    lsp.WINDOW_LOG_MESSAGE,
    lsp.PROGRESS,
    lsp.WINDOW_WORK_DONE_PROGRESS_CREATE,
)

T = TypeVar("T")


async def bounded(awaitable: Awaitable[T], timeout: float = STEP_TIMEOUT_S) -> T:
    """Await with a time limit, so a broken server fails the test instead of hanging it."""
    return await asyncio.wait_for(awaitable, timeout)


class Recorder:
    """Server-to-client messages in arrival order, and waiters for the ones to come."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._waiters: list[tuple[str, Callable[[Any], bool], asyncio.Future[Any]]] = []

    def record(self, method: str, params: Any) -> None:
        """Store one message and wake the waiters it satisfies (runs on the event loop)."""
        self.seen.append((method, params))
        for waiter in list(self._waiters):
            want, predicate, future = waiter
            if want == method and not future.done() and predicate(params):
                future.set_result(params)
                self._waiters.remove(waiter)

    def all(self, method: str) -> list[Any]:
        """All params received for a method so far."""
        return [params for m, params in self.seen if m == method]

    async def wait_for(self, method: str, predicate: Callable[[Any], bool] = lambda _: True) -> Any:
        """The first message (already received or still to come) that matches."""
        for m, params in self.seen:
            if m == method and predicate(params):
                return params
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, predicate, future))
        return await bounded(future)


def attach(client: Any, recorder: Recorder, defaults: dict[str, Any] | None = None) -> None:
    """Record the notifications (and progress-create requests) a client receives."""
    for method in RECORDED:
        default = (defaults or {}).get(method)

        def handler(ls: Any, params: Any, method: str = method, default: Any = default) -> Any:
            result = default(ls, params) if default is not None else None
            recorder.record(method, params)
            return result

        client.feature(method)(handler)


def log_contains(text: str) -> Callable[[lsp.LogMessageParams], bool]:
    """A predicate for log messages that mention `text`."""
    return lambda params: text in params.message


class RecordingClient(pytest_lsp.LanguageClient):
    """pytest-lsp's client, also recording notifications for bounded waits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorder = Recorder()
        self.initialize_result: lsp.InitializeResult | None = None


def make_recording_client() -> RecordingClient:
    """A pytest-lsp client factory: the default handlers plus recording."""
    client = RecordingClient(converter_factory=default_converter)
    others = {m: f for m, f in DEFAULT_CLIENT_FEATURES.items() if m not in RECORDED}
    register_lsp_features(client, others)
    attach(client, client.recorder, DEFAULT_CLIENT_FEATURES)
    return client


def capabilities(
    encodings: list[str] | None = None, progress: bool = True
) -> lsp.ClientCapabilities:
    """Client capabilities with the parts fillpoint looks at."""
    return lsp.ClientCapabilities(
        general=lsp.GeneralClientCapabilities(position_encodings=encodings),
        window=lsp.WindowClientCapabilities(work_done_progress=progress),
        workspace=lsp.WorkspaceClientCapabilities(configuration=True),
        text_document=lsp.TextDocumentClientCapabilities(
            completion=lsp.CompletionClientCapabilities(),
            inline_completion=lsp.InlineCompletionClientCapabilities(),
        ),
    )


class Session:
    """pygls' LanguageClient driving one server subprocess."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.client = LanguageClient("fillpoint-tests", "0")
        self.recorder = Recorder()
        attach(self.client, self.recorder)
        self.result: lsp.InitializeResult | None = None

    async def start(
        self,
        options: dict[str, Any] | None = None,
        encodings: list[str] | None = None,
        progress: bool = True,
        env: dict[str, str] | None = None,
    ) -> lsp.InitializeResult:
        """Start the server, initialize, and send `initialized`."""
        await bounded(self.client.start_io(*self.command, env=env))
        params = lsp.InitializeParams(
            capabilities=capabilities(encodings, progress),
            initialization_options=options,
            process_id=None,
        )
        self.result = await bounded(self.client.initialize_async(params))
        self.client.initialized(lsp.InitializedParams())
        return self.result

    async def model_loaded(self) -> None:
        """Wait for the server's log line that the model is loaded."""
        await self.recorder.wait_for(lsp.WINDOW_LOG_MESSAGE, log_contains("loaded"))

    def open(self, uri: str, text: str, language_id: str = "python", version: int = 1) -> None:
        """didOpen."""
        item = lsp.TextDocumentItem(uri=uri, language_id=language_id, version=version, text=text)
        self.client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=item))

    def change(
        self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str
    ) -> None:
        """An incremental didChange replacing one range."""
        rng = lsp.Range(lsp.Position(*start), lsp.Position(*end))
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[lsp.TextDocumentContentChangePartial(range=rng, text=text)],
            )
        )

    async def complete(self, uri: str, line: int, character: int) -> lsp.CompletionList:
        """textDocument/completion."""
        params = lsp.CompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character),
        )
        return await bounded(self.client.text_document_completion_async(params))

    async def inline(self, uri: str, line: int, character: int) -> lsp.InlineCompletionList:
        """textDocument/inlineCompletion."""
        params = lsp.InlineCompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character),
            context=lsp.InlineCompletionContext(
                trigger_kind=lsp.InlineCompletionTriggerKind.Invoked
            ),
        )
        return await bounded(self.client.text_document_inline_completion_async(params))

    async def shutdown(self) -> int | None:
        """shutdown + exit; the server's exit status."""
        await bounded(self.client.shutdown_async(None))
        self.client.exit(None)
        server = self.client._server
        return None if server is None else await bounded(server.wait())

    async def close(self) -> None:
        """Make sure the subprocess is gone (kill it if a test left it running)."""
        server = self.client._server
        if server is not None and server.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                server.kill()
        with contextlib.suppress(TimeoutError, RuntimeError):
            await bounded(self.client.stop(), 10)


@contextlib.asynccontextmanager
async def session(command: list[str]) -> Any:
    """A Session that is always cleaned up."""
    s = Session(command)
    try:
        yield s
    finally:
        await s.close()
