"""The `fillpoint` command: serve, complete, and the training tools (imported only when asked)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO, get_args

from fillpoint.completion.types import (
    CancelToken,
    EngineError,
    EngineSettings,
    MidTokenMode,
    Position,
)

from .options import MODEL_ENV

DEFAULT_HOST = "127.0.0.1"  # loopback: the server has no authentication
# Subcommands handed over whole to modules that import torch; never imported otherwise.
FORWARDED = {
    "train": ("fillpoint.training.cli", "train and export models"),
    "bench": ("fillpoint.training.bench", "benchmark models"),
    "research": ("fillpoint.training.research.cli", "tokenization studies"),
}


def _version() -> str:
    """The installed distribution's version."""
    try:
        return metadata.version("fillpoint")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def parse_host_port(spec: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT` (host defaults to loopback); `[::1]:PORT` for IPv6."""
    host, sep, port = spec.rpartition(":")
    host = host.strip("[]") if sep else ""
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {spec!r}") from None
    if not 0 <= number < 65536:  # 0: any free port (the log says which)
        raise argparse.ArgumentTypeError(f"port {number} is out of range")
    return host or DEFAULT_HOST, number


def parse_location(spec: str) -> tuple[Path, int, int]:
    """`FILE:LINE:COL` with one-based line and column, as editors show them."""
    parts = spec.rsplit(":", 2)  # rsplit: a Windows path has a colon of its own
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected FILE:LINE:COL, got {spec!r}")
    path, line, col = parts
    try:
        line_no, col_no = int(line), int(col)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FILE:LINE:COL, got {spec!r}") from None
    if not path or line_no < 1 or col_no < 1:
        raise argparse.ArgumentTypeError(f"expected FILE:LINE:COL (from 1), got {spec!r}")
    return Path(path), line_no, col_no


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `fillpoint`."""
    parser = argparse.ArgumentParser(
        prog="fillpoint", description="Offline neural code completion for Python."
    )
    parser.add_argument("--version", action="version", version=f"fillpoint {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        type=parse_host_port,
        help=f"listen on TCP instead of stdio (host defaults to {DEFAULT_HOST})",
    )
    serve.add_argument(
        "--log-level", default="warning", choices=["error", "warning", "info", "debug"]
    )

    complete = commands.add_parser("complete", help="complete at a position and print timings")
    complete.add_argument("location", metavar="FILE:LINE:COL", type=parse_location)
    complete.add_argument(
        "--model", metavar="PATH", help=f"release folder (default: ${MODEL_ENV}, else bundled)"
    )
    complete.add_argument("--mid-token", choices=get_args(MidTokenMode), default=None)
    complete.add_argument("--max-items", type=int, default=EngineSettings().max_items)
    complete.add_argument("--json", action="store_true", help="machine-readable output")

    for name, (_, help_text) in FORWARDED.items():
        commands.add_parser(name, help=f"{help_text} (arguments go to {name}'s own CLI)")
    return parser


def forward(command: str, argv: list[str]) -> int:
    """Run a training-side CLI, imported only now (it brings in torch)."""
    module_name = FORWARDED[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"fillpoint {command}: not available ({module_name} is missing)", file=sys.stderr)
        else:
            print(
                f"fillpoint {command}: {exc.name} is not installed; "
                "install the training extra: pip install 'fillpoint[train]'",
                file=sys.stderr,
            )
        return 2
    main_fn = getattr(module, "main", None)
    if not callable(main_fn):
        print(f"fillpoint {command}: {module_name} has no main(argv)", file=sys.stderr)
        return 2
    return int(main_fn(argv) or 0)


def serve(args: argparse.Namespace) -> int:
    """Run the language server until the client exits; 1 if it exits without shutdown."""
    from fillpoint.completion.runtime import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts
    logging.basicConfig(
        stream=sys.stderr,  # stdout carries the protocol
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from .server import create_server
    from .stdio import start_stdio

    server = create_server()
    if args.tcp:
        server.start_tcp(*args.tcp)
    else:
        start_stdio(server)
    return 0 if server.shutdown_requested else 1


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """A call's result and its wall time in milliseconds."""
    start = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - start) * 1000.0


def _print_report(report: dict[str, Any], out: TextIO) -> None:
    """The human-readable form of `fillpoint complete`'s report."""
    where = report["location"]
    print(
        f"{where['file']}:{where['line']}:{where['column']}  "
        f"(model {report['model'] or '?'}, loaded in {report['load_ms']:.0f} ms)",
        file=out,
    )
    completion, inline = report["completion"], report["inline"]
    print(f"completions ({completion['elapsed_ms']:.1f} ms):", file=out)
    for rank, item in enumerate(completion["items"], 1):
        percent = 100.0 * item["probability"]
        print(f"  {rank:3d}. {percent:5.1f}%  {item['text']:<30} {item['source']}", file=out)
    if not completion["items"]:
        print("  (none)", file=out)
    print(f"inline ({inline['elapsed_ms']:.1f} ms): {inline['text']!r}", file=out)


def _real_engine(settings: EngineSettings) -> Any:
    """The engine, imported only for the commands that need it."""
    from fillpoint.completion.engine import Engine

    return Engine(settings)


def run_complete(
    args: argparse.Namespace,
    engine_factory: Callable[[EngineSettings], Any] | None = None,
    out: TextIO | None = None,
) -> int:
    """Load the engine, complete at FILE:LINE:COL, print both results with timings."""
    out = out or sys.stdout
    path, line, col = args.location
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"fillpoint complete: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    from fillpoint.completion.documents import DocumentStore

    # utf-32 columns count characters, which is what editors show as the column.
    doc = DocumentStore("utf-32").open(path.resolve().as_uri(), text, 0, "python")
    if line > doc.line_count or col > len(doc.line_text(line - 1)) + 1:
        print(f"fillpoint complete: {path}:{line}:{col} is outside the file", file=sys.stderr)
        return 2
    model = args.model or os.environ.get(MODEL_ENV) or None
    settings = EngineSettings(model_path=model, max_items=args.max_items)
    if args.mid_token:
        settings.mid_token = args.mid_token
    engine = (engine_factory or _real_engine)(settings)
    _, load_ms = _timed(engine.load)
    if engine.error or not engine.ready:
        print(f"fillpoint complete: could not load the model: {engine.error}", file=sys.stderr)
        return 1
    pos = Position(line - 1, col - 1)
    try:
        ranked, ranked_ms = _timed(lambda: engine.complete(doc, pos, CancelToken()))
        inline, inline_ms = _timed(lambda: engine.inline(doc, pos, CancelToken()))
    except EngineError as exc:
        print(f"fillpoint complete: {exc}", file=sys.stderr)
        return 1
    ranked_items = sorted(ranked.items, key=lambda c: -c.probability)
    report = {
        "location": {"file": str(path), "line": line, "column": col},
        "model": engine.model_name,
        "load_ms": load_ms,
        "completion": {"elapsed_ms": ranked_ms, "items": [asdict(c) for c in ranked_items]},
        "inline": {
            "elapsed_ms": inline_ms,
            "text": inline.text,
            "probability": inline.probability,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2), file=out)
    else:
        _print_report(report, out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fillpoint` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in FORWARDED:
        # Before argparse, so `fillpoint train --help` reaches the training CLI.
        return forward(args_list[0], args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "serve":
        return serve(args)
    if args.command == "complete":
        return run_complete(args)
    parser.print_help(sys.stderr)
    return 2
