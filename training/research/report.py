"""Markdown reports with plots: tables, the reproducing command, files under docs/research/."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUT = Path("docs/research")


def command_line(argv: Sequence[str]) -> str:
    """The `fillpoint research ...` command that reproduces a report."""
    return "fillpoint research " + " ".join(shlex.quote(a) for a in argv)


def fmt(value: object, digits: int = 3) -> str:
    """A table cell: floats rounded, everything else as text."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 3) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(lines)


def write_report(out_dir: Path, name: str, title: str, argv: Sequence[str], body: str) -> Path:
    """Write `name`.md with the title and the reproducing command at its top."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.md"
    head = f"# {title}\n\nReproduce: `{command_line(argv)}`\n\n"
    path.write_text(head + body.rstrip() + "\n", encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return path


def bar_plot(
    path: Path,
    groups: Sequence[str],
    series: dict[str, Sequence[float]],
    ylabel: str,
    title: str,
) -> Path:
    """A grouped bar plot (one bar per series within each group), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # headless: reports are written on servers
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(groups))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) + 2), 4))
    for k, (label, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, groups, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
