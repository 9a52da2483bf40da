"""Ablations: other releases (a model trained without the type loss, say) on the same samples.

Each decoder runs through the engine in the shipped mid-token mode, with the CodeFill
name model left out (a release may or may not carry one), so the rows differ only in the
decoder: token accuracy, identifier top-1 and MRR@10 at identifier starts, and line exact
match and edit similarity.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .eval_engine import SHIPPED, engine_ranker, inline_metrics, load_engine, rank_table
from .eval_metrics import rank_metrics
from .token_accuracy import token_accuracy

ACCURACY_FILES = 30  # files of teacher-forced token accuracy per model


def parse_ablation(spec: str) -> tuple[str, Path]:
    """`NAME=PATH` of an --ablation argument."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {spec!r}")
    return name, Path(path)


def ablation_rows(
    models: dict[str, Path],
    starts: list,
    lines: list,
    corpus: Path,
    seed: int,
    file_weight: float,
) -> dict[str, dict]:
    """Measure each model on the identifier starts and line cuts of the main run."""
    rows = {}
    for name, path in models.items():
        engine = load_engine(path, SHIPPED, file_weight, codefill_weight=0.0)
        lists, _ = rank_table(engine_ranker(engine), [s.prefix for s in starts], name)
        ident = rank_metrics(lists, [s.truth for s in starts])
        line = inline_metrics(engine, [(s.prefix, "") for s in lines], [s.truth for s in lines])
        acc = token_accuracy(path, corpus, n_files=ACCURACY_FILES, seed=seed)
        rows[name] = {
            "token_accuracy": acc["accuracy"],
            "identifier_top1": ident["top1"],
            "identifier_mrr10": ident["mrr10"],
            "line_exact": line["exact"],
            "line_edit_sim": line["edit_sim"],
        }
    return rows
