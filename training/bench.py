"""`fillpoint bench`: replay typing over held-out files through the real server, and jedi's.

Both servers see the same keystrokes (incremental didChange) and the same completion
requests, one request at a time; fillpoint also gets the inline requests (jedi has none).
Outputs: STEM.json (every number and the raw latencies), STEM.md (tables against the
targets) and STEM.png (latency CDFs), with STEM from `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import bench_report as report
from .bench_client import BenchedServer, fillpoint_command, jedi_command
from .bench_workload import Session, advance, held_out_files, keystrokes, plan

DEFAULT_CORPUS = Path("data/corpus")
DEFAULT_OUT = Path("docs/benchmarks")
# jedi's diagnostics re-parse the file on every change; fillpoint has none, so they are off.
JEDI_OPTIONS: dict[str, Any] = {"diagnostics": {"enable": False}}
# The pause before the keystroke that precedes each request: 100 ms is a fast typist's
# interval between keys (120 words a minute); slower typing leaves more time.
DEFAULT_GAP_MS = 100
LOADED = re.compile(r"model (.+) loaded")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `fillpoint bench`."""
    p = argparse.ArgumentParser(prog="fillpoint bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="release folder (default: $FILLPOINT_MODEL, else bundled)")
    p.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="corpus folder whose test.jsonl holds the held-out files (default: data/corpus "
        "where it exists, else stdlib modules)",
    )
    p.add_argument(
        "--stdlib", action="store_true", help="type standard library modules, not corpus files"
    )
    p.add_argument("--files", type=int, default=8, help="held-out files to type")
    p.add_argument("--requests", type=int, default=600, help="completion + inline requests")
    p.add_argument("--chunk", type=int, default=1, help="characters per didChange")
    p.add_argument(
        "--gap-ms",
        type=int,
        default=DEFAULT_GAP_MS,
        help="pause before the last keystroke ahead of each request (0: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-jedi", action="store_true", help="skip jedi-language-server")
    p.add_argument(
        "--no-prefetch",
        action="store_true",
        help="turn the server's prefetch option off (idle work before requests)",
    )
    p.add_argument(
        "--mid-token",
        choices=["auto", "bytelevel", "healing", "naive"],
        help="the server's midToken option (default: the server's own default)",
    )
    p.add_argument(
        "--line-beam",
        type=int,
        metavar="W",
        help="the server's lineBeam option (default: the server's own default)",
    )
    p.add_argument(
        "--decoding",
        type=int,
        default=20,
        metavar="N",
        help="also time line decoding (greedy, Token Recycling, document drafts) on N lines "
        "per file (0: no)",
    )
    p.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="instead: time the engine's stages in-process on N requests (OUT.profile.txt)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="instead: replay the requests in-process, the idle work cut at the pause; engine "
        "latency and how often the idle work finished (OUT.inprocess.md)",
    )
    p.add_argument(
        "--editor-like",
        type=int,
        metavar="MS",
        help="instead: type the held-out files at a keystroke every MS ms, each with its "
        "requests sent as editors send them, without waiting for answers; latencies and the "
        "server's CPU share while typing (OUT.editor.md)",
    )
    p.add_argument(
        "--keystrokes",
        type=int,
        default=1200,
        help="keystrokes in all with --editor-like",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        metavar="N",
        help="replay N times, each with fresh server processes; latencies over all replays, "
        "the median cold start, the highest peak RSS",
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="writes OUT.json, OUT.md and OUT.png"
    )
    return p


async def replay(
    servers: list[BenchedServer], sessions: list[Session], chunk: int, gap_ms: int = 0
) -> int:
    """Type every session into every server, sending its requests; returns the didChange count.

    The keystrokes between two requests go as one burst, except the last: the servers catch
    up (a barrier), the user pauses for `gap_ms`, then types that keystroke and the request
    goes right after it, as an editor sends a completion request with the keystroke.
    """
    changes = 0
    for i, session in enumerate(sessions):
        uri = session.uri("bench", i)
        opened = session.text[: session.start]
        for s in servers:
            s.open(uri, opened)
        at, done, version = advance(0, 0, opened), session.start, 0
        for req in session.requests:
            pieces = list(keystrokes(session.text[done : req.offset], chunk))
            for piece in pieces[:-1]:
                version += 1
                for s in servers:
                    s.insert(uri, version, at, piece)
                at = advance(*at, piece)
            changes += len(pieces)
            done = req.offset
            last_at = at
            if pieces:
                version += 1
                at = advance(*at, pieces[-1])
            for s in servers:  # one at a time: the other server must not steal the cores
                await s.barrier()
                if gap_ms:
                    await asyncio.sleep(gap_ms / 1000)
                if pieces:
                    s.insert(uri, version, last_at, pieces[-1])
                if req.kind == "complete":
                    await s.complete(uri, at, typed=req.typed)
                elif s.name == report.FILLPOINT:
                    await s.inline(uri, at)
        for s in servers:
            s.close(uri)
    return changes


def _model_name(server: BenchedServer, fallback: str) -> str:
    """The model the server said it loaded."""
    for message in server.messages:
        if m := LOADED.search(message):
            return m.group(1)
    return fallback


def server_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """fillpoint's initializationOptions for the run: the model, midToken, lineBeam and
    prefetch, when given."""
    options: dict[str, Any] = {"modelPath": str(Path(args.model).resolve())} if args.model else {}
    if args.mid_token:
        options["midToken"] = args.mid_token
    if args.line_beam is not None:
        options["lineBeam"] = args.line_beam
    if args.no_prefetch:
        options["prefetch"] = False
    return options or None


def typing_sessions(
    args: argparse.Namespace, n_requests: int
) -> tuple[list[tuple[str, str]], list[Session]]:
    """The held-out files (name, text) and the replay's typing sessions over them,
    `n_requests` requests in all."""
    files = held_out_files(args.corpus, args.files, args.seed)
    if not files:
        raise SystemExit("fillpoint bench: no held-out files found")
    return files, plan(files, n_requests, args.seed)


async def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Start the servers (one after the other, for clean cold starts), replay, collect."""
    files, sessions = typing_sessions(args, args.requests)
    loadavg = os.getloadavg()
    jedi = None if args.no_jedi else jedi_command()
    if jedi is None and not args.no_jedi:
        print("fillpoint bench: jedi-language-server not found; comparing nothing", file=sys.stderr)
    readings: dict[str, list[tuple[BenchedServer, float, float]]] = {}
    for r in range(args.repeats):
        if args.repeats > 1:
            print(f"fillpoint bench: replay {r + 1} of {args.repeats}", file=sys.stderr)
        servers = [BenchedServer(report.FILLPOINT, fillpoint_command(), server_options(args))]
        if jedi is not None:
            servers.append(BenchedServer(report.JEDI, jedi, JEDI_OPTIONS))
        try:
            for s in servers:
                await s.start()
                s.start_cpu_window()
            for s in servers:  # one replay after the other: neither server edits while the
                # other is timed (jedi-language-server parses each change it is sent, which
                # took the cores from fillpoint's idle work when both were sent every keystroke)
                changes = await replay([s], sessions, args.chunk, args.gap_ms)
            for s in servers:
                readings.setdefault(s.name, []).append((s, s.cpu_window(), s.peak_rss_mb()))
        finally:
            for s in servers:
                await s.stop()
    merged = [pooled(runs) for runs in readings.values()]
    summaries = {s.name: report.server_summary(s, cpu, rss) for s, cpu, rss in merged}
    servers = [s for s, _, _ in merged]
    meta = {"command": command, "loadavg": loadavg, "changes": changes, "model": args.model}
    result = _result(servers, summaries, files, sessions, args, meta)
    if args.decoding > 0:
        from fillpoint.completion.engine import default_model_path

        from .bench_decoding import compare

        model = Path(args.model) if args.model else default_model_path()
        result["decoding"] = compare(model, files, args.decoding, args.seed)
    result["checks"] = report.checks(result)
    return result


def pooled(runs: list[tuple[BenchedServer, float, float]]) -> tuple[BenchedServer, float, float]:
    """One server's replays as one: (the first replay's server holding every replay's
    requests and the median cold start, CPU seconds of all replays, the highest peak RSS)."""
    first = runs[0][0]
    for server, _, _ in runs[1:]:
        first.timings.extend(server.timings)
    starts = [s.cold_start_ms for s, _, _ in runs if s.cold_start_ms is not None]
    first.cold_start_ms = statistics.median(starts) if starts else None
    return first, sum(cpu for _, cpu, _ in runs), max(rss for _, _, rss in runs)


def _result(
    servers: list[BenchedServer],
    summaries: dict[str, Any],
    files: list[tuple[str, str]],
    sessions: list[Session],
    args: argparse.Namespace,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Everything the JSON holds: run facts, workload, per-server summaries, checks, samples."""
    ours = summaries[report.FILLPOINT]["completion"]["p95_ms"]
    theirs = summaries[report.JEDI]["completion"]["p95_ms"] if report.JEDI in summaries else None
    reqs = [r for s in sessions for r in s.requests]
    result: dict[str, Any] = {
        "command": meta["command"],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "model": _model_name(servers[0], meta["model"] or "bundled"),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg": list(meta["loadavg"]),
            "python": sys.version.split()[0],
        },
        "workload": {
            "source": "stdlib" if files[0][0].startswith("stdlib:") else "corpus test split",
            "files": [s.name for s in sessions],
            "seed": args.seed,
            "chunk": args.chunk,
            "gap_ms": args.gap_ms,
            "repeats": args.repeats,
            "keystrokes": meta["changes"],
            "completion_requests": sum(r.kind == "complete" for r in reqs),
            "mid_token_requests": sum(r.kind == "complete" and r.typed > 0 for r in reqs),
            "inline_requests": sum(r.kind == "inline" for r in reqs),
        },
        "servers": summaries,
        "p95_ratio_vs_jedi": theirs / ours if theirs and ours else None,
        "samples": {
            s.name: {
                "completion": [round(x, 3) for x in s.timings.completion_ms],
                **(
                    {"inline": [round(x, 3) for x in s.timings.inline_ms]}
                    if s.timings.inline_ms
                    else {}
                ),
            }
            for s in servers
        },
    }
    return result


def check_inputs(args: argparse.Namespace) -> None:
    """Exit with one clear line on a model or corpus named that is not there (before any
    server starts); without --corpus or --stdlib, data/corpus where it exists, else stdlib
    modules."""
    from fillpoint.completion.runtime import verify_release
    from fillpoint.completion.types import EngineError

    if args.stdlib and args.corpus is not None:
        raise SystemExit("fillpoint bench: --stdlib and --corpus: choose one")
    if args.stdlib:
        args.corpus = None  # held_out_files: stdlib modules
    elif args.corpus is None:
        args.corpus = DEFAULT_CORPUS
    elif not (args.corpus / "test.jsonl").is_file():
        raise SystemExit(
            f"fillpoint bench: --corpus {args.corpus}: no test.jsonl there "
            "(made by `fillpoint train corpus`; --stdlib types standard library modules)"
        )
    if args.model is not None:
        try:
            verify_release(Path(args.model))
        except EngineError as exc:
            raise SystemExit(f"fillpoint bench: --model: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fillpoint bench` (forwarded by the fillpoint CLI)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = shlex.join(["fillpoint", "bench", *argv])
    check_inputs(args)
    if args.in_process:
        from .bench_inprocess import main_in_process

        _, sessions = typing_sessions(args, args.requests)
        return main_in_process(args.model, sessions, args.gap_ms, args.out, command)
    if args.editor_like:
        from .bench_editor import main_editor_like

        _, sessions = typing_sessions(args, args.keystrokes)  # files with somewhere to type
        options = server_options(args)
        return main_editor_like(
            sessions, args.keystrokes, args.editor_like, options, args.out, command
        )
    if args.profile:
        from .bench_profile import main_profile

        _, sessions = typing_sessions(args, args.profile)
        return main_profile(
            args.model,
            sessions,
            args.profile,
            args.out.with_suffix(".profile.txt"),
            prefetch=not args.no_prefetch,
        )
    result = asyncio.run(run(args, command))
    json_path, md_path, png_path = report.write(result, args.out)
    print(md_path.read_text())
    print(f"wrote {json_path}, {md_path}" + (f", {png_path}" if png_path else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
