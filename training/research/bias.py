"""`fillpoint research bias`: tokenization bias of naive prompts that end inside a token."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .report import md_table
from .sources import corpus_records

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")


@dataclass
class BiasConfig:
    """Sizes of the study: ~50 cut points take well under a minute."""

    corpus: Path = Path("data/corpus")
    model: Path = Path("models/release")
    cuts: int = 50
    window: int = 500  # characters of prompt before the cut
    seed: int = 0


def cut_points(texts: list[str], n: int, window: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, true next character) with the prompt ending inside an identifier."""
    rng = random.Random(seed)
    out = []
    for text in texts:
        names = [m for m in _NAME.finditer(text) if m.start() > window]
        if not names:
            continue
        m = rng.choice(names)
        pos = rng.randint(m.start() + 1, m.end() - 1)
        start = text.rfind("\n", 0, pos - window) + 1
        out.append((text[start:pos], text[pos]))
        if len(out) >= n:
            break
    return out


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in bits, q floored so that it stays finite."""
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / np.maximum(q[mask], 1e-12))))


def run(cfg: BiasConfig, out_dir: Path) -> str:
    """Compare naive and exact next-byte distributions; the report body (markdown)."""
    from fillpoint.completion.bytelevel_base import by_first_byte
    from fillpoint.completion.bytelevel_onnx import ByteLevelDecoder
    from fillpoint.completion.runtime import OnnxDecoder

    start = time.time()
    lm = OnnxDecoder(cfg.model, threads=1)
    dec = ByteLevelDecoder(lm)
    first = np.array([b[0] if b else 256 for b in lm.token_bytes])
    texts = [r["text"] for r in corpus_records(cfg.corpus, "test", 0.5, cfg.seed)]
    random.Random(cfg.seed).shuffle(texts)
    ctx = (lm.eot_token,)
    kls, changed, ll_naive, ll_exact, hit_naive, hit_exact = [], 0, [], [], 0, 0
    for prompt, nxt in cut_points(texts, cfg.cuts, cfg.window, cfg.seed):
        ids = tuple(lm.encode(prompt))
        row = dec.scorer.rows(ctx, [ids])[ids]
        naive = np.exp(by_first_byte(first, row))
        naive /= naive.sum()
        exact = dec.bytelevel.next_byte_distribution(prompt.encode(), context=ctx)
        exact = exact / exact.sum()
        b = nxt.encode()[0]
        kls.append(kl(exact, naive))
        changed += int(np.argmax(naive) != np.argmax(exact))
        ll_naive.append(np.log2(max(naive[b], 1e-12)))
        ll_exact.append(np.log2(max(exact[b], 1e-12)))
        hit_naive += int(np.argmax(naive) == b)
        hit_exact += int(np.argmax(exact) == b)
    n = max(len(kls), 1)
    rows = [
        ["naive (prompt tokens as they are)", 100 * hit_naive / n, float(np.mean(ll_naive))],
        ["exact byte-level", 100 * hit_exact / n, float(np.mean(ll_exact))],
    ]
    body = [
        f"{len(kls)} prompts from test-split files, each ending inside an identifier (random",
        f"position, {cfg.window} characters of context), release model `{cfg.model}`.",
        "Naive: the next-token distribution after the canonical encoding of the prompt, folded",
        "to first bytes. Exact: `ByteLevel.next_byte_distribution` (sum over cover encodings).",
        "",
        f"- mean KL(exact || naive): **{np.mean(kls):.3f} bits** (median {np.median(kls):.3f})",
        f"- top-1 next byte differs: **{100 * changed / n:.0f}%** of prompts",
        "",
        md_table(["distribution", "top-1 = true next byte %", "mean log2 P(true byte)"], rows, 2),
        "",
        f"Run time {time.time() - start:.0f} s.",
    ]
    return "\n".join(body)
