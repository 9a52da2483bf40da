"""Running completers over evaluation samples: the engine, or any ranker of identifiers.

A ranker is any callable from the text before the cursor to names, best first; the engine
in each mid-token mode, the baselines, and other model families all enter the identifier
tables through the same `rank_table`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from fillpoint.completion.documents import Document
from fillpoint.completion.engine import Engine
from fillpoint.completion.types import EngineSettings, MidTokenMode, Position

from .eval_metrics import edit_sim

SHIPPED = EngineSettings().mid_token  # the mode the server ships: ghost text and ablations

Ranker = Callable[[str], list[str]]  # text before the cursor -> names, best first
TYPED = re.compile(r"[^\W\d]\w*\Z")


def _end(text: str) -> Position:
    """The position just after `text`, in UTF-16 code units as editors count."""
    lines = text.split("\n")
    return Position(len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2)


def typed_part(prefix: str) -> str:
    """The identifier characters typed just before the cursor."""
    m = TYPED.search(prefix)
    return m.group() if m else ""


def p50(xs: list[float]) -> float:
    """The median (upper median for even counts), 0 for no samples."""
    return sorted(xs)[len(xs) // 2] if xs else 0.0


def load_engine(
    model: Path,
    mode: MidTokenMode,
    file_weight: float,
    codefill_weight: float = EngineSettings().codefill_weight,
    byte_ensemble: bool = False,
    line_beam: int = EngineSettings().line_beam,
    line_repeat_weight: float = EngineSettings().line_repeat_weight,
) -> Engine:
    """An engine for `model` in one mid-token mode; exits with the load error if it fails."""
    settings = EngineSettings(
        model_path=str(model),
        mid_token=mode,
        max_items=10,
        file_weight=file_weight,
        codefill_weight=codefill_weight,
        byte_ensemble=byte_ensemble,
        line_beam=line_beam,
        line_repeat_weight=line_repeat_weight,
    )
    engine = Engine(settings)
    engine.load()
    if engine.error:
        raise SystemExit(engine.error)
    return engine


def engine_ranker(engine: Engine) -> Ranker:
    """The engine's completion list at the end of a prefix, as a ranker."""
    counter = iter(range(1 << 62))

    def ranked(prefix: str) -> list[str]:
        # a fresh uri per request: the typed-through cache must not answer from a neighbour
        doc = Document(f"file:///eval/{next(counter)}.py", prefix)
        return [c.text for c in engine.complete(doc, _end(prefix)).items]

    return ranked


def rank_table(ranker: Ranker, prefixes: list[str], desc: str) -> tuple[list[list[str]], float]:
    """The ranker's lists at each prefix, and its p50 latency in ms."""
    lists, times = [], []
    for prefix in tqdm(prefixes, desc=desc, leave=False):
        t0 = time.perf_counter()
        lists.append(ranker(prefix))
        times.append((time.perf_counter() - t0) * 1000)
    return lists, p50(times)


def inline_predictions(
    engine: Engine, docs: list[tuple[str, str]]
) -> tuple[list[str], list[float]]:
    """The engine's ghost text between each (before, after), and the latencies in ms.

    The document is `before + after` with the cursor between them; an empty `after` is
    left-context-only line completion.
    """
    preds, times = [], []
    mode = engine.settings.mid_token
    for i, (before, after) in enumerate(tqdm(docs, desc=f"inline ({mode})", leave=False)):
        doc = Document(f"file:///eval/inline-{i}.py", before + after)
        t0 = time.perf_counter()
        preds.append(engine.inline(doc, _end(before)).text)
        times.append((time.perf_counter() - t0) * 1000)
    return preds, times


def line_scores(preds: list[str], truths: list[str]) -> dict:
    """Exact match (share) and edit similarity (0-100) of predicted lines, whitespace-trimmed."""
    n = len(truths)
    if not n:
        return {"n": 0}
    exact = sum(p.strip() == t.strip() for p, t in zip(preds, truths, strict=True))
    sim = sum(edit_sim(p, t) for p, t in zip(preds, truths, strict=True))
    return {"exact": exact / n, "edit_sim": sim / n, "n": n}


def inline_metrics(engine: Engine, docs: list[tuple[str, str]], truths: list[str]) -> dict:
    """Line scores of the engine's ghost text, with its p50 latency."""
    preds, times = inline_predictions(engine, docs)
    return line_scores(preds, truths) | {"p50_ms": p50(times)}
