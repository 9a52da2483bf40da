"""End to end with pytest-lsp: `python -m fillpoint.lsp serve` with the real engine.

The protocol assertions hold with or without a trained model; the ones that need
real completions take `release_model_dir` and skip until a model is released.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import pytest_lsp
from lsp_harness import (
    SERVE,
    RecordingClient,
    bounded,
    log_contains,
    make_recording_client,
    session,
)
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pytest_lsp import ClientServerConfig, client_capabilities

from fillpoint.lsp.options import MODEL_ENV

URI = "file:///work/pkg/example.py"
TEXT = "import os\n\n\ndef join_all(parts):\n    return os.path.join(*parts)\n\n\njoin_"
BOGUS_MODEL = "/nonexistent/fillpoint-model"
# The environment the server starts in, without a model chosen by whoever runs the tests.
SERVER_ENV = {k: v for k, v in os.environ.items() if k != MODEL_ENV}


def _config() -> ClientServerConfig:
    """The real server over stdio, with a client that records notifications."""
    return ClientServerConfig(
        server_command=SERVE, client_factory=make_recording_client, server_env=SERVER_ENV
    )


async def _initialize(client: RecordingClient, spec: str, options: dict[str, Any] | None) -> None:
    """initialize + initialized with a real editor's capabilities."""
    params = lsp.InitializeParams(
        capabilities=client_capabilities(spec), initialization_options=options
    )
    client.initialize_result = await bounded(client.initialize_session(params))


@pytest_lsp.fixture(config=_config())
async def bogus_client(lsp_client: RecordingClient) -> Any:
    """A session (VS Code's capabilities) told to load a model that does not exist."""
    await _initialize(lsp_client, "visual-studio-code", {"modelPath": BOGUS_MODEL})
    yield
    await bounded(lsp_client.shutdown_session())


@pytest_lsp.fixture(config=_config())
async def neovim_client(lsp_client: RecordingClient) -> Any:
    """A session with Neovim 0.11's capabilities (it offers UTF-8 positions) and defaults."""
    await _initialize(lsp_client, "neovim@v0.11.0", None)
    yield
    await bounded(lsp_client.shutdown_session())


@pytest_lsp.fixture(config=_config())
async def released_client(lsp_client: RecordingClient, release_model_dir: Path) -> Any:
    """A session with the bundled release model, loaded."""
    await _initialize(lsp_client, "visual-studio-code", {"modelPath": str(release_model_dir)})
    await lsp_client.recorder.wait_for(lsp.WINDOW_LOG_MESSAGE, log_contains("loaded"))
    yield
    await bounded(lsp_client.shutdown_session())


def _open(client: RecordingClient, uri: str, text: str, language_id: str = "python") -> None:
    """didOpen."""
    item = lsp.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=item))


async def _complete(client: RecordingClient, uri: str, line: int, ch: int) -> lsp.CompletionList:
    """textDocument/completion."""
    params = lsp.CompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line, ch)
    )
    return await bounded(client.text_document_completion_async(params))


async def _inline(client: RecordingClient, uri: str, line: int, ch: int) -> Any:
    """textDocument/inlineCompletion."""
    params = lsp.InlineCompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri),
        position=lsp.Position(line, ch),
        context=lsp.InlineCompletionContext(trigger_kind=lsp.InlineCompletionTriggerKind.Automatic),
    )
    return await bounded(client.text_document_inline_completion_async(params))


async def test_missing_model_is_reported_and_server_answers(bogus_client: RecordingClient) -> None:
    shown = await bogus_client.recorder.wait_for(lsp.WINDOW_SHOW_MESSAGE)
    assert shown.type == lsp.MessageType.Error and BOGUS_MODEL in shown.message
    assert await bogus_client.recorder.wait_for(lsp.WINDOW_LOG_MESSAGE, log_contains(BOGUS_MODEL))
    _open(bogus_client, URI, TEXT)
    for _ in range(2):
        assert not (await _complete(bogus_client, URI, 7, 5)).items
        assert not (await _inline(bogus_client, URI, 7, 5)).items
    assert len(bogus_client.recorder.all(lsp.WINDOW_SHOW_MESSAGE)) == 1
    progress = bogus_client.recorder.all(lsp.PROGRESS)
    assert [p.value["kind"] for p in progress] == ["begin", "end"]


async def test_capabilities(bogus_client: RecordingClient) -> None:
    result = bogus_client.initialize_result
    caps = result.capabilities
    assert result.server_info.name == "fillpoint" and result.server_info.version
    assert caps.position_encoding == lsp.PositionEncodingKind.Utf16  # VS Code offers no other
    assert caps.text_document_sync.change == lsp.TextDocumentSyncKind.Incremental
    assert caps.text_document_sync.open_close
    assert set(caps.completion_provider.trigger_characters) >= {".", "(", "["}
    assert " " not in caps.completion_provider.trigger_characters
    assert caps.inline_completion_provider is not None


async def test_utf8_is_negotiated(neovim_client: RecordingClient) -> None:
    caps = neovim_client.initialize_result.capabilities
    assert caps.position_encoding == lsp.PositionEncodingKind.Utf8


async def test_bad_input_gets_empty_results(neovim_client: RecordingClient) -> None:
    _open(neovim_client, URI, TEXT)
    _open(neovim_client, "file:///work/README.md", "join_ os.path\n", language_id="markdown")
    _open(neovim_client, "file:///work/empty.py", "")
    cases = [
        ("file:///work/never-opened.py", 0, 0),
        (URI, 99, 0),
        (URI, 7, 40),
        ("file:///work/README.md", 0, 5),
        ("file:///work/empty.py", 0, 0),
    ]
    for uri, line, ch in cases:
        assert not (await _complete(neovim_client, uri, line, ch)).items, uri
        assert not (await _inline(neovim_client, uri, line, ch)).items, uri


async def test_real_completions(release_model_dir: Path, released_client: RecordingClient) -> None:
    _open(released_client, URI, TEXT)
    result = await _complete(released_client, URI, 7, 5)
    assert result.is_incomplete and result.items
    ranks = [item.sort_text for item in result.items]
    assert ranks == sorted(ranks)
    for item in result.items:
        assert re.match(r"fillpoint \d+\.\d% ", item.detail)
        assert item.text_edit.range.end == lsp.Position(7, 5)
        assert item.text_edit.new_text == item.label
    inline = await _inline(released_client, URI, 7, 5)
    for item in inline.items:
        assert item.insert_text and item.range.start.line == 7


async def test_exit_status() -> None:
    async with session(SERVE) as s:
        await s.start(options={"modelPath": BOGUS_MODEL})
        assert await s.shutdown() == 0
    async with session(SERVE) as s:
        await s.start(options={"modelPath": BOGUS_MODEL})
        s.client.exit(None)  # without shutdown: LSP says exit status 1
        assert await bounded(s.client._server.wait()) == 1


async def test_tcp() -> None:
    server = await asyncio.create_subprocess_exec(
        *SERVE, "--tcp", "127.0.0.1:0", "--log-level", "info",
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=SERVER_ENV,
    )  # fmt: skip
    try:
        port = None
        while port is None:  # pygls logs the address it listens on, with the port chosen
            line = (await bounded(server.stderr.readline())).decode()
            assert line, "server exited before listening"
            if found := re.search(r"Serving on \('127\.0\.0\.1', (\d+)\)", line):
                port = int(found.group(1))
        client = LanguageClient("fillpoint-tests", "0")
        await bounded(client.start_tcp("127.0.0.1", port))
        result = await bounded(
            client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
        )
        assert result.server_info.name == "fillpoint"
        await bounded(client.shutdown_async(None))
        client.exit(None)
        await bounded(server.wait())
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
