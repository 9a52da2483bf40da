"""End to end over stdio with pygls' LanguageClient: the real server wiring, a fake engine.

The fake engine makes completions deterministic and lets the tests block a call
until it is cancelled, so supersession and $/cancelRequest are tested without races.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from lsp_harness import SERVE_FAKE, Session, bounded, log_contains, session
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcRequestCancelled

URI = "file:///work/pkg/example.py"
TEXT = "import os\n\nvalue = os.path.join('a', 'b')\nval\nwait = 1  # BLOCK\n"


def labels(result: lsp.CompletionList) -> list[str]:
    """The items' labels in the order the client would show them."""
    return [i.label for i in sorted(result.items, key=lambda i: i.sort_text or "")]


async def started(s: Session, **options: object) -> Session:
    """Initialize with options and wait for the model to load."""
    await s.start(options=dict(options) or None)
    await s.model_loaded()
    return s


async def test_full_session() -> None:
    async with session(SERVE_FAKE) as s:
        result = await s.start()
        caps = result.capabilities
        assert result.server_info.name == "fillpoint"
        assert caps.position_encoding == lsp.PositionEncodingKind.Utf16
        assert caps.text_document_sync.change == lsp.TextDocumentSyncKind.Incremental
        assert "." in caps.completion_provider.trigger_characters
        assert " " not in caps.completion_provider.trigger_characters
        assert caps.inline_completion_provider is not None

        await s.model_loaded()
        s.open(URI, TEXT)
        completion = await s.complete(URI, 3, 3)
        assert labels(completion) == ["value"]
        item = completion.items[0]
        assert item.text_edit.range == lsp.Range(lsp.Position(3, 0), lsp.Position(3, 3))
        assert item.detail.startswith("fillpoint ") and completion.is_incomplete

        # Incremental change: add a new identifier above the cursor line.
        s.change(URI, 2, (1, 0), (1, 0), "valley = 2\n")
        completion = await s.complete(URI, 4, 3)
        assert set(labels(completion)) == {"value", "valley"}

        inline = await s.inline(URI, 4, 3)
        assert len(inline.items) == 1 and inline.items[0].insert_text.endswith("()")
        assert inline.items[0].range.start == lsp.Position(4, 0)

        # A request that works until cancelled; $/cancelRequest must stop the worker too.
        blocked = s.client.protocol.send_request_async(
            lsp.TEXT_DOCUMENT_COMPLETION,
            lsp.CompletionParams(
                text_document=lsp.TextDocumentIdentifier(uri=URI), position=lsp.Position(5, 2)
            ),
            msg_id="blocked-1",
        )
        assert await bounded(s.client.protocol.send_request_async("fake/waitBlocked", {"count": 1}))
        s.client.cancel_request(lsp.CancelParams(id="blocked-1"))
        with pytest.raises(JsonRpcRequestCancelled):
            await bounded(blocked)
        # The inference thread is free again (it would be stuck if the call went on).
        assert labels(await s.complete(URI, 4, 3))

        progress = s.recorder.all(lsp.PROGRESS)
        assert [p.value["kind"] for p in progress] == ["begin", "end"]
        assert not s.recorder.all(lsp.WINDOW_SHOW_MESSAGE)
        assert await s.shutdown() == 0


async def test_newer_request_supersedes_older() -> None:
    async with session(SERVE_FAKE) as s:
        await started(s)
        s.open(URI, TEXT)
        older = asyncio.ensure_future(s.complete(URI, 4, 2))  # the BLOCK line
        assert await bounded(s.client.protocol.send_request_async("fake/waitBlocked", {"count": 1}))
        newer = await s.complete(URI, 3, 3)
        assert not (await bounded(older)).items and labels(newer) == ["value"]
        assert await s.shutdown() == 0


async def test_bad_input_gets_empty_results() -> None:
    async with session(SERVE_FAKE) as s:
        await started(s)
        s.open(URI, TEXT)
        s.open("file:///work/notes.md", "value val\n", language_id="markdown")
        s.open("file:///work/empty.py", "")
        s.open("file:///work/bugs.py", "x = 1  # BOOM\ny = 2  # ENGINE_ERROR\n")
        cases = [
            ("file:///work/never-opened.py", 0, 0),
            (URI, 40, 0),  # past the last line
            (URI, 3, 50),  # past the end of the line
            ("file:///work/notes.md", 0, 9),
            ("file:///work/empty.py", 0, 0),
            ("file:///work/bugs.py", 0, 3),  # the engine raises a bug
            ("file:///work/bugs.py", 1, 3),  # the engine raises EngineError
        ]
        for uri, line, character in cases:
            assert not (await s.complete(uri, line, character)).items, (uri, line)
            assert not (await s.inline(uri, line, character)).items, (uri, line)
        # The server still works after all that.
        assert labels(await s.complete(URI, 3, 3)) == ["value"]
        assert await s.shutdown() == 0


async def test_requests_before_the_model_loads_get_empty_results() -> None:
    async with session(SERVE_FAKE) as s:
        await s.start(options={"modelPath": "/models/gated"})
        s.open(URI, TEXT)
        assert not (await s.complete(URI, 3, 3)).items
        assert not (await s.inline(URI, 3, 3)).items
        s.client.protocol.notify("fake/releaseLoad", {})
        await s.model_loaded()
        assert labels(await s.complete(URI, 3, 3)) == ["value"]
        assert await s.shutdown() == 0


@pytest.mark.parametrize("model_path", ["/models/missing", "/models/crash"])
async def test_load_failure_is_shown_once_and_server_keeps_running(model_path: str) -> None:
    async with session(SERVE_FAKE) as s:
        await s.start(options={"modelPath": model_path})
        shown = await s.recorder.wait_for(lsp.WINDOW_SHOW_MESSAGE)
        assert shown.type == lsp.MessageType.Error and model_path in shown.message
        details = await s.recorder.wait_for(lsp.WINDOW_LOG_MESSAGE, log_contains("failed"))
        assert details.type == lsp.MessageType.Error
        s.open(URI, TEXT)
        for _ in range(2):
            assert not (await s.complete(URI, 3, 3)).items
            assert not (await s.inline(URI, 3, 3)).items
        assert len(s.recorder.all(lsp.WINDOW_SHOW_MESSAGE)) == 1
        assert await s.shutdown() == 0


async def test_invalid_options_warn_and_use_defaults() -> None:
    async with session(SERVE_FAKE) as s:
        options = {"maxItems": "many", "midToken": "bytes", "inline": True}
        await s.start(options=options, progress=False)
        shown = await s.recorder.wait_for(lsp.WINDOW_SHOW_MESSAGE)
        assert shown.type == lsp.MessageType.Warning
        assert "maxItems" in shown.message and "midToken" in shown.message
        await s.model_loaded()
        s.open(URI, TEXT)
        assert labels(await s.complete(URI, 3, 3)) == ["value"]
        assert not s.recorder.all(lsp.PROGRESS)  # the client said it cannot show progress
        assert await s.shutdown() == 0


async def test_configuration_change_reloads_and_applies_options() -> None:
    async with session(SERVE_FAKE) as s:
        await started(s)
        s.open(URI, TEXT)
        settings = {"fillpoint": {"modelPath": "/models/other", "inline": False}}
        s.client.workspace_did_change_configuration(
            lsp.DidChangeConfigurationParams(settings=settings)
        )
        await s.recorder.wait_for(lsp.WINDOW_LOG_MESSAGE, log_contains("fake:/models/other"))
        assert not (await s.inline(URI, 3, 3)).items  # inline turned off
        assert labels(await s.complete(URI, 3, 3)) == ["value"]

        bad = {"fillpoint": {"modelPath": "/models/missing"}}
        s.client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=bad))
        shown = await s.recorder.wait_for(lsp.WINDOW_SHOW_MESSAGE)
        assert shown.type == lsp.MessageType.Error
        assert not (await s.complete(URI, 3, 3)).items
        assert await s.shutdown() == 0


async def test_utf8_positions_when_the_client_offers_them() -> None:
    text = "é = 'ü'; ab = 1; abc = 2\né; ab\n"
    async with session(SERVE_FAKE) as s:
        result = await s.start(encodings=["utf-16", "utf-8"])
        assert result.capabilities.position_encoding == lsp.PositionEncodingKind.Utf8
        await s.model_loaded()
        s.open(URI, text)
        # Line 1 is "é; ab": the cursor after "ab" is byte 6 (é takes two bytes).
        completion = await s.complete(URI, 1, 6)
        assert labels(completion) == ["abc"]
        assert completion.items[0].text_edit.range.start == lsp.Position(1, 4)
        # An incremental edit in UTF-8 columns: "ab" -> "abc" after the "é; " prefix.
        s.change(URI, 2, (1, 6), (1, 6), "c")
        assert labels(await s.complete(URI, 1, 7)) == []  # "abc" typed in full
        assert await s.shutdown() == 0


async def test_settings_are_pulled_when_none_are_pushed() -> None:
    async with session(SERVE_FAKE) as s:
        pulled: list[lsp.ConfigurationParams] = []

        @s.client.feature(lsp.WORKSPACE_CONFIGURATION)
        def configuration(ls: object, params: lsp.ConfigurationParams) -> list[object]:
            pulled.append(params)
            return [{"inline": False, "maxItems": 1}]

        await started(s)
        s.open(URI, TEXT)
        assert (await s.inline(URI, 3, 3)).items
        s.client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
        await s.recorder.wait_for(lsp.WINDOW_LOG_MESSAGE, log_contains("inline=False"))
        assert [item.section for item in pulled[0].items] == ["fillpoint"]
        assert not (await s.inline(URI, 3, 3)).items
        assert await s.shutdown() == 0


async def test_model_folder_from_the_environment() -> None:
    env = {**os.environ, "FILLPOINT_MODEL": "/models/from-env"}
    async with session(SERVE_FAKE) as s:
        await s.start(env=env)
        await s.recorder.wait_for(lsp.WINDOW_LOG_MESSAGE, log_contains("fake:/models/from-env"))
        assert await s.shutdown() == 0
