"""Drive `fillpoint serve` over stdio like an editor would, at the cursor marks of bank.py.

Each `‸` in bank_cursors.txt is a cursor; the demo sends the file without the marks, asks for the
completion list and the inline (ghost text) completion at each cursor, and prints what came
back with the time each request took.
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
    client.feature(lsp.WINDOW_SHOW_MESSAGE)(lambda p: messages.append(p.message))
    client.feature(lsp.WINDOW_LOG_MESSAGE)(lambda p: None)
    t0 = time.perf_counter()
    await client.start_io(sys.executable, "-m", "fillpoint.lsp", "serve")
    await client.initialize_async(
        lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), process_id=None)
    )
    client.initialized(lsp.InitializedParams())
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "python", 1, text))
    )
    lines = text.split("\n")
    first = True
    for pos in points:
        doc = lsp.TextDocumentIdentifier(uri)
        # The model loads in the background after `initialized`; wait for real answers.
        deadline = time.perf_counter() + 60
        while True:
            t = time.perf_counter()
            result = await client.text_document_completion_async(lsp.CompletionParams(doc, pos))
            ms = (time.perf_counter() - t) * 1000
            items = result.items if isinstance(result, lsp.CompletionList) else (result or [])
            if items or not first or time.perf_counter() > deadline or messages:
                break
            await asyncio.sleep(0.2)
        if first:
            print(f"server ready after {time.perf_counter() - t0:.2f} s\n")
            first = False
        shown = lines[pos.line][: pos.character].strip()
        print(f"line {pos.line + 1}, col {pos.character + 1}:  {shown}‸")
        print(f"  completion list ({ms:.0f} ms):")
        for item in items[:5]:
            print(f"    {item.label:<20} {item.detail or ''}")
        t = time.perf_counter()
        inline = await client.text_document_inline_completion_async(
            lsp.InlineCompletionParams(
                lsp.InlineCompletionContext(lsp.InlineCompletionTriggerKind.Invoked), doc, pos
            )
        )
        ms = (time.perf_counter() - t) * 1000
        ghost = inline.items[0].insert_text if inline and inline.items else ""
        ghost = ghost if isinstance(ghost, str) else ghost.value
        print(f"  inline ({ms:.0f} ms):  {shown}‸{ghost}\n")
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    for m in messages:
        print(f"server message: {m}")
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
