"""Drive `fillpoint serve` over stdio like an editor would, at the cursor marks of bank.py.

Each `‸` in bank_cursors.txt is a cursor; the demo sends the file without the marks, asks for the
completion list at each cursor, then for the inline (ghost text) completion as it would be
while that line is being typed (the rest of the line not there yet), and prints what came back
with the time each request took and, for the ghost text, the line's real rest.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

MARK = "‸"
HERE = Path(__file__).resolve().parent


def cursors(marked: str) -> tuple[str, list[lsp.Position]]:
    """The text without marks and the position of each mark."""
    text, positions = "", []
    for line_no, line in enumerate(marked.split("\n")):
        while MARK in line:
            col = line.index(MARK)
            positions.append(lsp.Position(line_no, col))
            line = line[:col] + line[col + 1 :]
        text += line + "\n"
    return text[:-1], positions


async def main() -> int:
    """Run the demo; returns a process exit code."""
    text, points = cursors((HERE / "bank_cursors.txt").read_text())
    uri = (HERE / "bank.py").as_uri()
    client = LanguageClient("fillpoint-demo", "1")
    messages: list[str] = []
    loaded = asyncio.Event()  # the server says when its model is ready (or failed to load)
    client.feature(lsp.WINDOW_SHOW_MESSAGE)(lambda p: messages.append(p.message))
    client.feature(lsp.WINDOW_LOG_MESSAGE)(lambda p: None)
    client.feature("fillpoint/status")(
        lambda p: loaded.set() if getattr(p, "state", "") in ("ready", "error") else None
    )
    t0 = time.perf_counter()
    await client.start_io(sys.executable, "-m", "fillpoint.lsp", "serve")
    await client.initialize_async(
        lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), process_id=None)
    )
    client.initialized(lsp.InitializedParams())
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "python", 1, text))
    )
    # The model loads in the background after `initialized`.
    try:
        await asyncio.wait_for(loaded.wait(), 120)
    except TimeoutError:
        messages.append("the model did not finish loading within 120 s")
    print(f"server ready after {time.perf_counter() - t0:.2f} s\n")
    lines = text.split("\n")
    doc = lsp.VersionedTextDocumentIdentifier(version=1, uri=uri)
    for pos in points:
        t = time.perf_counter()
        result = await client.text_document_completion_async(lsp.CompletionParams(doc, pos))
        ms = (time.perf_counter() - t) * 1000
        items = result.items if isinstance(result, lsp.CompletionList) else (result or [])
        line = lines[pos.line]
        shown, rest = line[: pos.character].strip(), line[pos.character :]
        print(f"line {pos.line + 1}, col {pos.character + 1}:  {shown}‸{rest.rstrip()}")
        print(f"  completion list ({ms:.0f} ms):")
        for item in items[:5]:
            print(f"    {item.label:<20} {item.detail or ''}")
        # Ghost text while the line is typed: take the rest of the line out, ask, put it back.
        rest_range = lsp.Range(pos, lsp.Position(pos.line, len(line)))
        doc = await edit(client, doc, rest_range, "")
        t = time.perf_counter()
        inline = await client.text_document_inline_completion_async(
            lsp.InlineCompletionParams(
                lsp.InlineCompletionContext(lsp.InlineCompletionTriggerKind.Invoked), doc, pos
            )
        )
        ms = (time.perf_counter() - t) * 1000
        doc = await edit(client, doc, lsp.Range(pos, pos), rest)
        ghost = inline.items[0].insert_text if inline and inline.items else ""
        ghost = ghost if isinstance(ghost, str) else ghost.value
        print(f"  inline ({ms:.0f} ms):  {shown}‸{ghost}")
        print(f"  the line goes on:  {shown}‸{rest}\n")
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    for m in messages:
        print(f"server message: {m}")
    return 1 if messages else 0


async def edit(
    client: LanguageClient, doc: lsp.VersionedTextDocumentIdentifier, where: lsp.Range, text: str
) -> lsp.VersionedTextDocumentIdentifier:
    """Apply one incremental edit; returns the document's new identifier."""
    doc = lsp.VersionedTextDocumentIdentifier(version=doc.version + 1, uri=doc.uri)
    change = lsp.TextDocumentContentChangePartial(range=where, text=text)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(doc, [change]))
    return doc


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
