"""`fillpoint bench --editor-like MS`: typing as an editor sends it, at a fixed rhythm.

The main replay pauses before every request, so that each one tests what the idle work made
in the pause. Here the held-out files are typed at one keystroke every MS milliseconds (a
longer pause after every PAUSE_EVERY keystrokes), each keystroke with a request for ghost
text and, after name characters and the characters names follow (`.`, `(`, a space), one
for the list, sent without waiting for the answers, as editors do. What it reports is what
that costs: the latencies, the server's share of one core while the typing lasts, and its
peak memory.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from .bench_client import BenchedServer, fillpoint_command
from .bench_workload import Session, advance

PAUSE_EVERY = 40  # keystrokes between two longer pauses
PAUSE_MS = 400
LIST_AFTER = "._( "  # besides name characters, the characters that ask for the list


def asks_for_list(char: str) -> bool:
    """Whether an editor asks for the completion list after typing `char`."""
    return char.isalnum() or char in LIST_AFTER


async def replay(
    sessions: list[Session], keystrokes: int, every_ms: int, options: dict[str, Any] | None
) -> dict[str, Any]:
    """Type `keystrokes` characters in all, shared by the sessions, into a fresh server."""
    server = BenchedServer("fillpoint", fillpoint_command(), options)
    await server.start()
    try:
        server.start_cpu_window()
        pending: list[asyncio.Future[Any]] = []
        share, typed, t0 = -(-keystrokes // max(1, len(sessions))), 0, time.perf_counter()
        for i, session in enumerate(sessions):
            uri = session.uri("editor", i)
            server.open(uri, session.text[: session.start])
            at = advance(0, 0, session.text[: session.start])
            body = session.text[session.start : session.start + share]
            for version, char in enumerate(body, start=1):
                server.insert(uri, version, at, char)
                at = advance(*at, char)
                pending.append(asyncio.ensure_future(server.inline(uri, at)))
                if asks_for_list(char):
                    pending.append(asyncio.ensure_future(server.complete(uri, at)))
                typed += 1
                pause = PAUSE_MS if typed % PAUSE_EVERY == 0 else every_ms
                await asyncio.sleep(pause / 1000)
            await asyncio.gather(*pending)
            pending.clear()
            server.close(uri)
        wall = time.perf_counter() - t0
        cpu, rss = server.cpu_window(), server.peak_rss_mb()
    finally:
        await server.stop()
    t = server.timings
    return {
        "keystrokes": typed,
        "every_ms": every_ms,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": rss,
        "completion_ms": t.completion_ms,
        "inline_ms": t.inline_ms,
    }


def report(result: dict[str, Any], command: str) -> str:
    """Markdown: the latencies and what the server cost while the typing lasted."""
    wall, cpu = result["wall_s"], result["cpu_s"]
    lines = [
        f"`{command}`",
        "",
        f"{result['keystrokes']} keystrokes, one every {result['every_ms']} ms (a "
        f"{PAUSE_MS} ms pause after every {PAUSE_EVERY}), each with a request for ghost text "
        "and, after name characters, `.`, `(` and spaces, one for the list, sent without "
        f"waiting for the answers. The server used {cpu:.1f} s of CPU in {wall:.1f} s, "
        f"{100 * cpu / wall:.0f}% of one core; peak RSS {result['peak_rss_mb']:.0f} MiB.",
        "",
        "| requests | n | p50 | p95 | p99 |",
        "|---|---|---|---|---|",
    ]
    for name, key in (("completion", "completion_ms"), ("inline", "inline_ms")):
        if ms := result[key]:
            p50, p95, p99 = np.percentile(ms, [50, 95, 99])
            lines.append(f"| {name} | {len(ms)} | {p50:.1f} ms | {p95:.1f} ms | {p99:.1f} ms |")
    return "\n".join(lines) + "\n"


def main_editor_like(
    sessions: list[Session],
    keystrokes: int,
    every_ms: int,
    options: dict[str, Any] | None,
    out: Path,
    command: str,
) -> int:
    """Run, print and write OUT.editor.md."""
    text = report(asyncio.run(replay(sessions, keystrokes, every_ms, options)), command)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".editor.md").write_text(text)
    return 0
