"""One language server under benchmark: a pygls client on its stdio, timings and /proc readings.

Latencies are measured in the client, from sending a request to reading its answer, so they
include what an editor sees: JSON-RPC, the server's event loop, and the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

STEP_TIMEOUT_S = 60.0  # one request on a loaded 2-core machine; a hang fails the run instead
COLD_START_TIMEOUT_S = 180.0
COLD_POLL_S = 0.02  # between completion requests while the model loads
BARRIER = "fillpoint/benchBarrier"  # a method no server has: answered in order, at once
# Where a completion must have items once a model is loaded: the file itself names `path`.
WARMUP_URI = "file:///bench/warmup.py"
WARMUP_TEXT = (
    "import os\n\n\ndef main(root):\n    path = os.path.join(root, 'a')\n"
    "    return os.path.exists(path)\n\n\nprint(os.pa"
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def fillpoint_command() -> list[str]:
    """The real fillpoint server, as editors start it."""
    return [sys.executable, "-m", "fillpoint.lsp", "serve"]


def jedi_command() -> list[str] | None:
    """jedi-language-server next to this interpreter (the venv), else on PATH, else None."""
    local = Path(sys.executable).parent / "jedi-language-server"
    if local.is_file():
        return [str(local)]
    from shutil import which

    found = which("jedi-language-server")
    return [found] if found else None


@dataclass
class Timings:
    """What one server did during the replay."""

    completion_ms: list[float] = field(default_factory=list)
    completion_items: list[int] = field(default_factory=list)
    completion_typed: list[int] = field(default_factory=list)  # characters of the name typed
    inline_ms: list[float] = field(default_factory=list)
    inline_nonempty: list[bool] = field(default_factory=list)

    def extend(self, other: Timings) -> None:
        """Add another replay's requests to these."""
        for name, values in vars(other).items():
            getattr(self, name).extend(values)


class BenchedServer:
    """A server subprocess driven by pygls' LanguageClient, with its process readings."""

    def __init__(self, name: str, command: list[str], options: dict[str, Any] | None) -> None:
        self.name, self.command, self.options = name, command, options
        self.client = LanguageClient("fillpoint-bench", "0")
        self.messages: list[str] = []  # showMessage/logMessage text, for error reports
        self.timings = Timings()
        self.cold_start_ms: float | None = None
        self._cpu_start = 0.0
        self._register_handlers()

    def _register_handlers(self) -> None:
        """Answer what servers send to clients; keep their messages."""

        @self.client.feature(lsp.WINDOW_LOG_MESSAGE)
        def log_message(params: lsp.LogMessageParams) -> None:
            self.messages.append(params.message)

        @self.client.feature(lsp.WINDOW_SHOW_MESSAGE)
        def show_message(params: lsp.ShowMessageParams) -> None:
            self.messages.append(params.message)

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
            pass

        @self.client.feature(lsp.WORKSPACE_CONFIGURATION)
        def configuration(params: lsp.ConfigurationParams) -> list[Any]:
            return [None for _ in params.items]

    @property
    def pid(self) -> int:
        """The server's process id."""
        server = self.client._server  # pygls keeps the subprocess here and has no accessor
        if server is None:
            raise RuntimeError(f"{self.name} is not running")
        return server.pid

    async def start(self) -> None:
        """Start, initialize, and wait for the first completion with items (the cold start)."""
        t0 = time.perf_counter()
        await asyncio.wait_for(self.client.start_io(*self.command), STEP_TIMEOUT_S)
        caps = lsp.ClientCapabilities(
            text_document=lsp.TextDocumentClientCapabilities(
                completion=lsp.CompletionClientCapabilities(),
                inline_completion=lsp.InlineCompletionClientCapabilities(),
            ),
        )
        params = lsp.InitializeParams(
            capabilities=caps, initialization_options=self.options, process_id=os.getpid()
        )
        await asyncio.wait_for(self.client.initialize_async(params), STEP_TIMEOUT_S)
        self.client.initialized(lsp.InitializedParams())
        self.open(WARMUP_URI, WARMUP_TEXT)
        end = WARMUP_TEXT.splitlines()[-1]
        where = (WARMUP_TEXT.count("\n"), len(end))
        while True:
            _, items = await self.complete(WARMUP_URI, where, record=False)
            if items:
                break
            failed = [m for m in self.messages if "could not load" in m]
            if failed or time.perf_counter() - t0 > COLD_START_TIMEOUT_S:
                said = "; ".join(failed or self.messages[-3:]) or "no message"
                raise RuntimeError(f"{self.name} gave no completion in time ({said})")
            await asyncio.sleep(COLD_POLL_S)
        self.cold_start_ms = (time.perf_counter() - t0) * 1000
        self.close(WARMUP_URI)

    def open(self, uri: str, text: str) -> None:
        """didOpen of a Python document."""
        item = lsp.TextDocumentItem(uri=uri, language_id="python", version=0, text=text)
        self.client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=item))

    def close(self, uri: str) -> None:
        """didClose."""
        doc = lsp.TextDocumentIdentifier(uri=uri)
        self.client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=doc))

    def insert(self, uri: str, version: int, at: tuple[int, int], text: str) -> None:
        """An incremental didChange inserting `text` at `at`."""
        pos = lsp.Position(*at)
        change = lsp.TextDocumentContentChangePartial(range=lsp.Range(pos, pos), text=text)
        doc = lsp.VersionedTextDocumentIdentifier(uri=uri, version=version)
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(text_document=doc, content_changes=[change])
        )

    async def barrier(self) -> None:
        """Wait until the server has handled every message sent so far (as keystroke gaps do)."""
        with contextlib.suppress(JsonRpcException):
            await asyncio.wait_for(
                self.client.protocol.send_request_async(BARRIER, None), STEP_TIMEOUT_S
            )

    async def complete(
        self, uri: str, at: tuple[int, int], record: bool = True, typed: int = 0
    ) -> tuple[float, int]:
        """textDocument/completion; (milliseconds, number of items)."""
        params = lsp.CompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(*at)
        )
        t0 = time.perf_counter()
        result = await asyncio.wait_for(
            self.client.text_document_completion_async(params), STEP_TIMEOUT_S
        )
        ms = (time.perf_counter() - t0) * 1000
        items = result.items if isinstance(result, lsp.CompletionList) else result or []
        if record:
            self.timings.completion_ms.append(ms)
            self.timings.completion_items.append(len(items))
            self.timings.completion_typed.append(typed)
        return ms, len(items)

    async def inline(self, uri: str, at: tuple[int, int]) -> tuple[float, bool]:
        """textDocument/inlineCompletion; (milliseconds, whether it offered text)."""
        params = lsp.InlineCompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(*at),
            context=lsp.InlineCompletionContext(
                trigger_kind=lsp.InlineCompletionTriggerKind.Automatic
            ),
        )
        t0 = time.perf_counter()
        result = await asyncio.wait_for(
            self.client.text_document_inline_completion_async(params), STEP_TIMEOUT_S
        )
        ms = (time.perf_counter() - t0) * 1000
        items = result.items if isinstance(result, lsp.InlineCompletionList) else result or []
        offered = any(getattr(i, "insert_text", "") for i in items)
        self.timings.inline_ms.append(ms)
        self.timings.inline_nonempty.append(offered)
        return ms, offered

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (/proc/PID/stat)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)

    def start_cpu_window(self) -> None:
        """Start counting CPU time for the replay (the cold start is reported on its own)."""
        self._cpu_start = self.cpu_seconds()

    def cpu_window(self) -> float:
        """CPU seconds since `start_cpu_window`."""
        return self.cpu_seconds() - self._cpu_start

    def peak_rss_mb(self) -> float:
        """The process's peak resident set (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
        raise RuntimeError("no VmHWM in /proc/PID/status")

    async def stop(self) -> None:
        """shutdown + exit, killing the process if it does not go."""
        with contextlib.suppress(JsonRpcException, TimeoutError, RuntimeError):
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
        server = self.client._server
        if server is not None:
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    server.kill()
        with contextlib.suppress(TimeoutError, RuntimeError):
            await asyncio.wait_for(self.client.stop(), 10)
