"""Tune the engine's file-identifier weight on the validation split (never on test).

The model's beams are computed once per sample; only the cheap mixing step is repeated
for each weight, so a sweep costs one model pass.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from fillpoint.completion import decoding
from fillpoint.completion.context import build_context
from fillpoint.completion.documents import Document
from fillpoint.completion.engine import model_candidates, rank
from fillpoint.completion.runtime import OnnxDecoder

from .evaluate import _end, rank_metrics, sample_points

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


def sweep(model: Path, corpus: Path, n: int, weights: tuple[float, ...] = WEIGHTS) -> dict:
    """top-1/top-5/MRR@10 at identifier starts and mid-token for each file weight."""
    lm = OnnxDecoder(model)
    vocab = decoding.Vocab(lm)
    starts, mids, _ = sample_points(corpus, n, 0, seed=1, split="valid")
    out: dict = {}
    for name, samples in (("identifier_starts", starts), ("mid_token", mids)):
        cases = []
        for s in tqdm(samples, desc=name, leave=False):
            doc = Document("file:///tune.py", s.prefix)
            ctx = build_context(doc, _end(s.prefix))
            cases.append((ctx, model_candidates(lm, vocab, ctx, "healing"), s.truth))
        out[name] = {
            str(w): rank_metrics(
                [[c.text for c in rank(found, ctx, 10, w)] for ctx, found, _ in cases],
                [truth for _, _, truth in cases],
            )
            for w in weights
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m fillpoint.training.tune --model DIR`: print the sweep as JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/release")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args(argv)
    result = sweep(Path(args.model), Path(args.corpus), args.n)
    for name, rows in result.items():
        print(name)
        for w, m in rows.items():
            print(f"  w={w:<4} top1 {m['top1']:.3f} top5 {m['top5']:.3f} mrr {m['mrr10']:.3f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
