"""`fillpoint bench --in-process`: the replay's timing without the protocol, in a minute.

Each request's document is opened as typed up to it; the server's idle work (`idle_work`:
the engine's `prepare`, then freed memory given back) runs at the text before the last
keystroke and is cancelled when the pause ends, as the server cancels it when the keystroke
arrives; the request then waits for the idle work to stop (its model call under way stops
within a graph node), and runs. malloc's arenas are limited as the server limits them, so
what memory costs in page faults counts too. What it reports is what the engine adds to a
request in the replay (the protocol adds about 1.5 ms more), and how often the idle work
finished in the pause: a quick way to compare changes to the engine before a full
`fillpoint bench`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bench_workload import Session


@dataclass(frozen=True)
class Timed:
    """One request of the in-process replay."""

    kind: str  # "complete" or "inline"
    typed: int  # characters of the name typed before the request (0: at its start)
    ms: float  # the wait for the idle work to stop, plus the request
    idle_ms: float  # how long the idle work ran, cut short or not
    finished: bool  # whether the idle work finished within the pause


def replay(model: str | None, sessions: list[Session], gap_ms: int) -> list[Timed]:
    """Time every request of `sessions` in-process, the idle work cut at `gap_ms`."""
    from fillpoint.completion.documents import DocumentStore
    from fillpoint.completion.engine import Engine
    from fillpoint.completion.types import Cancelled, CancelToken, EngineSettings
    from fillpoint.lsp.server import idle_work

    engine = Engine(EngineSettings(model_path=model))
    engine.load()
    if not engine.ready:
        raise SystemExit(f"fillpoint bench --in-process: cannot load the model: {engine.error}")
    out = []
    for i, session in enumerate(sessions):
        store, uri = DocumentStore("utf-32"), f"file:///bench/{i}.py"
        for req in session.requests:
            before = session.before_keystroke(req)
            doc = store.open(uri, before, 0)
            token = CancelToken()
            pause = threading.Timer(gap_ms / 1000, token.cancel)
            if gap_ms > 0:
                pause.start()
            else:  # no pause: the keystroke comes before any idle work
                token.cancel()
            t0 = time.perf_counter()
            try:
                idle_work(engine, doc, doc.position_at(len(before)), token)
                finished = True
            except Cancelled:
                finished = False
            idle_ms = (time.perf_counter() - t0) * 1000
            pause.cancel()
            doc = store.open(uri, session.text[: req.offset], 0)
            t1 = time.perf_counter()
            call = engine.complete if req.kind == "complete" else engine.inline
            call(doc, doc.position_at(req.offset))
            wait = max(0.0, idle_ms - gap_ms)  # the keystroke came while the idle work ran
            ms = wait + (time.perf_counter() - t1) * 1000
            out.append(Timed(req.kind, req.typed, ms, idle_ms, finished))
    return out


def report(timed: list[Timed], gap_ms: int, command: str) -> str:
    """Markdown: latency percentiles per kind of request, and the idle work's finish rate."""
    lines = [
        f"`{command}`",
        "",
        f"In-process replay, idle work cut at a {gap_ms} ms pause (engine time; no protocol).",
        "",
        "| requests | n | p50 | p95 | p99 | idle work finished |",
        "|---|---|---|---|---|---|",
    ]
    groups = {
        "completion": [t for t in timed if t.kind == "complete"],
        "completion at name starts": [t for t in timed if t.kind == "complete" and not t.typed],
        "completion inside names": [t for t in timed if t.kind == "complete" and t.typed],
        "inline": [t for t in timed if t.kind == "inline"],
    }
    for name, group in groups.items():
        if not group:
            continue
        p50, p95, p99 = np.percentile([t.ms for t in group], [50, 95, 99])
        done = sum(t.finished for t in group)
        lines.append(
            f"| {name} | {len(group)} | {p50:.1f} ms | {p95:.1f} ms | {p99:.1f} ms "
            f"| {done}/{len(group)} |"
        )
    return "\n".join(lines) + "\n"


def main_in_process(
    model: str | None, sessions: list[Session], gap_ms: int, out: Path, command: str
) -> int:
    """Run, print and write OUT.inprocess.md; malloc's arenas limited as in the server."""
    from fillpoint.completion.runtime import limit_malloc_arenas

    limit_malloc_arenas()
    text = report(replay(model, sessions, gap_ms), gap_ms, command)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".inprocess.md").write_text(text)
    return 0
