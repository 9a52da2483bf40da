"""Summaries, targets, and the three outputs of `fillpoint bench`: JSON, markdown, PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .bench_client import BenchedServer

FILLPOINT, JEDI = "fillpoint", "jedi-language-server"
# (metric key in the summary, comparison, target, unit): the product's latency budget.
TARGETS: list[tuple[str, str, float, str]] = [
    ("completion.p50_ms", "<=", 15.0, "ms"),
    ("completion.p95_ms", "<=", 40.0, "ms"),
    ("inline.p50_ms", "<=", 60.0, "ms"),
    ("inline.p95_ms", "<=", 150.0, "ms"),
    ("cold_start_ms", "<=", 1500.0, "ms"),
    ("peak_rss_mb", "<=", 300.0, "MiB"),
    ("p95_ratio_vs_jedi", ">=", 3.0, "x"),
    # Token Recycling against plain greedy decoding on the lines cut at random (`--decoding`)
    ("token_recycling_speedup", ">=", 1.5, "x"),
]


def latency_summary(ms: list[float]) -> dict[str, Any]:
    """Count, mean and p50/p95/p99 of latencies in milliseconds (None when there are none)."""
    if not ms:
        return {"n": 0, "mean_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    p50, p95, p99 = np.percentile(np.asarray(ms), [50, 95, 99])
    return {
        "n": len(ms),
        "mean_ms": float(np.mean(ms)),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
    }


def server_summary(server: BenchedServer, cpu_s: float, rss_mb: float) -> dict[str, Any]:
    """One server's numbers: latencies, answer rates, cold start, memory and CPU per request."""
    t = server.timings
    n_requests = len(t.completion_ms) + len(t.inline_ms)
    completion = latency_summary(t.completion_ms)
    completion["with_items"] = (
        sum(1 for n in t.completion_items if n) / len(t.completion_items)
        if t.completion_items
        else None
    )
    pairs = list(zip(t.completion_typed, t.completion_ms, strict=True))
    completion["identifier_start"] = latency_summary([ms for k, ms in pairs if k == 0])
    completion["mid_token"] = latency_summary([ms for k, ms in pairs if k > 0])
    inline = latency_summary(t.inline_ms) if t.inline_ms else None
    if inline is not None:
        inline["offered"] = sum(t.inline_nonempty) / len(t.inline_nonempty)
    return {
        # executable names only: the report is committed, the machine's paths are not
        "command": [Path(part).name if part.startswith("/") else part for part in server.command],
        "cold_start_ms": server.cold_start_ms,
        "peak_rss_mb": rss_mb,
        "cpu_ms_per_request": 1000 * cpu_s / n_requests if n_requests else None,
        "cpu_s_replay": cpu_s,
        "completion": completion,
        "inline": inline,
    }


def _lookup(summary: dict[str, Any], key: str) -> float | None:
    """A dotted key of a server summary or a whole result, or None where it is missing."""
    value: Any = summary
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with fillpoint's measurement and whether it is met (None: not measured)."""
    ours = dict(
        result["servers"][FILLPOINT],
        p95_ratio_vs_jedi=result["p95_ratio_vs_jedi"],
        token_recycling_speedup=_lookup(result, "decoding.drafters.table.speedup"),
    )
    rows = []
    for key, op, target, unit in TARGETS:
        value = _lookup(ours, key)
        met = None if value is None else (value <= target if op == "<=" else value >= target)
        rows.append({"metric": key, "op": op, "target": target, "unit": unit, "value": value})
        rows[-1]["met"] = met
    return rows


def _fmt(value: float | None, unit: str = "") -> str:
    """A number for the table; an en dash where there is none."""
    if value is None:
        return "–"
    if unit == "%":
        return f"{100 * value:.0f}%"
    if unit == "x":
        return f"{value:.2f}x"
    text = f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.1f}"
    return f"{text} {unit}".strip()


def to_markdown(result: dict[str, Any], png_name: str | None) -> str:
    """The benchmark page: command, caveats, a targets table, a comparison table, the plot."""
    work, machine = result["workload"], result["machine"]
    ours, jedi = result["servers"][FILLPOINT], result["servers"].get(JEDI)
    lines = [
        "# fillpoint benchmarks",
        "",
        "```",
        result["command"],
        "```",
        "",
        f"{result['date']}, model `{result['model']}`, {machine['cpus']} CPUs, "
        f"load average {machine['loadavg'][0]:.2f} at the start. "
        f"{len(work['files'])} held-out files ({work['source']}), typed "
        f"{work['chunk']} character(s) per didChange ({work['keystrokes']} changes); "
        f"{work['completion_requests']} completion and {work['inline_requests']} inline requests. "
        "Latency is client-side (request sent to answer read) through the real server "
        "over stdio; each server replays the files alone, one after the other"
        + (
            f", {work['repeats']} times, each time from a fresh process (latencies over all "
            "replays, the median cold start, the highest peak RSS)"
            if work.get("repeats", 1) > 1
            else ""
        )
        + ". Before each "
        "request the server catches up on the keystrokes so far (a barrier), the user pauses "
        f"{work.get('gap_ms', 0)} ms, then the last keystroke and the request go together, "
        "so the request pays for that keystroke's edit.",
        "",
        "| metric | fillpoint | target | met |",
        "|---|---|---|---|",
    ]
    for row in result["checks"]:
        met = {True: "yes", False: "**no**", None: "–"}[row["met"]]
        target = f"{row['op']} {_fmt(row['target'], row['unit'])}"
        lines.append(f"| {row['metric']} | {_fmt(row['value'], row['unit'])} | {target} | {met} |")
    if (rss := _lookup(ours, "peak_rss_mb")) is not None:
        lines += [
            "",
            f"Peak RSS is in MiB (2^20 bytes): {rss:.0f} MiB is {rss * 2**20 / 1e6:.0f} MB in "
            "decimal megabytes.",
        ]
    lines += ["", f"| | {FILLPOINT} | {JEDI} |", "|---|---|---|"]
    for key, unit in [
        ("completion.p50_ms", "ms"),
        ("completion.p95_ms", "ms"),
        ("completion.p99_ms", "ms"),
        ("completion.identifier_start.p95_ms", "ms"),
        ("completion.mid_token.p95_ms", "ms"),
        ("completion.with_items", "%"),
        ("inline.p50_ms", "ms"),
        ("inline.p95_ms", "ms"),
        ("inline.p99_ms", "ms"),
        ("inline.offered", "%"),
        ("cold_start_ms", "ms"),
        ("peak_rss_mb", "MiB"),
        ("cpu_ms_per_request", "ms"),
    ]:
        theirs = _fmt(_lookup(jedi, key), unit) if jedi else "not run"
        lines.append(f"| {key} | {_fmt(_lookup(ours, key), unit)} | {theirs} |")
    if png_name:
        lines += ["", f"![latency distributions]({png_name})"]
    if result.get("decoding"):
        from .bench_decoding import to_markdown as decoding_markdown

        lines += ["", *decoding_markdown(result["decoding"])]
    lines += ["", "Files: " + ", ".join(f"`{f}`" for f in work["files"]), ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> bool:
    """Latency CDFs of every measured series, with the targets; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for server, series in result["samples"].items():
        for kind, ms in series.items():
            if ms:
                xs = np.sort(np.asarray(ms))
                ax.step(
                    xs, np.arange(1, len(xs) + 1) / len(xs), where="post", label=f"{server} {kind}"
                )
    for ms, label in [(40.0, "completion p95 target"), (150.0, "inline p95 target")]:
        ax.axvline(ms, linestyle=":", color="grey")
        ax.text(ms, 0.02, f" {label}", rotation=90, va="bottom", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, client-side)")
    ax.set_ylabel("share of requests")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write(result: dict[str, Any], stem: Path) -> tuple[Path, Path, Path | None]:
    """STEM.json, STEM.md and STEM.png; the markdown is also what gets printed."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (stem.with_suffix(s) for s in (".json", ".md", ".png"))
    png = png_path if plot(result, png_path) else None
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(to_markdown(result, png.name if png else None))
    return json_path, md_path, png
