"""Replay real editing on a standard-library file through the real server: no errors, ever.

The file is opened empty and typed in line by line with incremental edits; after each line a
completion and an inline request are sent at random cursor positions inside what was typed.
"""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path
from typing import Any

import pytest_lsp
from lsp_harness import SERVE, RecordingClient, bounded, log_contains, make_recording_client
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, client_capabilities

URI = "file:///work/replay/textwrap.py"
N_LINES = 120  # 240 requests and 120 edits


def _source() -> list[str]:
    path = Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"
    return path.read_text(encoding="utf-8").splitlines(keepends=True)[:N_LINES]


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=SERVE, client_factory=make_recording_client)
)
async def client(lsp_client: RecordingClient, release_model_dir: Path) -> Any:
    """A VS Code-like session with the released model loaded."""
    params = lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        initialization_options={"modelPath": str(release_model_dir)},
    )
    await bounded(lsp_client.initialize_session(params))
    await lsp_client.recorder.wait_for(lsp.WINDOW_LOG_MESSAGE, log_contains("loaded"))
    yield
    await bounded(lsp_client.shutdown_session())


async def test_replay_typing_real_code(client: RecordingClient) -> None:
    rng = random.Random(7)
    doc = lsp.TextDocumentIdentifier(uri=URI)
    item = lsp.TextDocumentItem(uri=URI, language_id="python", version=1, text="")
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=item))
    lines: list[str] = []
    answered = 0
    for version, line in enumerate(_source(), start=2):
        end = lsp.Position(len(lines), 0)
        change = lsp.TextDocumentContentChangePartial(range=lsp.Range(end, end), text=line)
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=URI, version=version),
                content_changes=[change],
            )
        )
        lines.append(line)
        row = rng.randrange(len(lines))
        col = rng.randrange(len(lines[row].rstrip("\n")) + 1)
        pos = lsp.Position(row, col)
        result = await bounded(
            client.text_document_completion_async(
                lsp.CompletionParams(text_document=doc, position=pos)
            )
        )
        items = result.items if isinstance(result, lsp.CompletionList) else result or []
        for completion in items:
            assert completion.text_edit.range.end == pos
        inline = await bounded(
            client.text_document_inline_completion_async(
                lsp.InlineCompletionParams(
                    context=lsp.InlineCompletionContext(
                        trigger_kind=lsp.InlineCompletionTriggerKind.Automatic
                    ),
                    text_document=doc,
                    position=pos,
                )
            )
        )
        for ghost in inline.items if inline else []:
            assert "\n" not in ghost.insert_text
        answered += 2
    assert answered == 2 * N_LINES
    errors = [
        m for m in client.recorder.all(lsp.WINDOW_LOG_MESSAGE) if m.type == lsp.MessageType.Error
    ]
    assert not errors, errors
    assert not client.recorder.all(lsp.WINDOW_SHOW_MESSAGE)
