"""Tune the engine's mixture weights on the validation split (never on test).

The file-identifier weight and, when the release has a CodeFill model, the CodeFill share
of the model side; with `--lines N`, the ghost text's weight on the document's own lines.
The models run once per sample; only the cheap mixing step is repeated for each weight, so
a sweep costs one model pass.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from fillpoint.completion import decoding
from fillpoint.completion.bytelevel_onnx import ByteLevelDecoder
from fillpoint.completion.codefill_runtime import CodeFillRuntime
from fillpoint.completion.context import build_context
from fillpoint.completion.documents import Document
from fillpoint.completion.engine import (
    choose_line,
    codefill_names,
    exact_candidates,
    line_prompt,
    line_repeats,
    model_candidates,
    rank,
    repeat_candidates,
)
from fillpoint.completion.postprocess import clean_inline
from fillpoint.completion.runtime import OnnxDecoder, verify_release
from fillpoint.completion.types import EngineError, EngineSettings

from .eval_engine import line_scores
from .evaluate import _end, rank_metrics, sample_points

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
CODEFILL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def sweep(
    model: Path,
    corpus: Path,
    n: int,
    weights: tuple[float, ...] = WEIGHTS,
    codefill_weights: tuple[float, ...] = CODEFILL_WEIGHTS,
    mode: str = "healing",
) -> dict:
    """top-1/top-5/MRR@10 at identifier starts and mid-token for each pair of weights,
    keyed "file weight/codefill weight", with the decoder's names found in `mode`."""
    lm = OnnxDecoder(model)
    vocab = decoding.Vocab(lm)
    bytelevel = ByteLevelDecoder(lm) if mode == "bytelevel" else None
    codefill = CodeFillRuntime(model / "codefill") if (model / "codefill").is_dir() else None
    if codefill is None:
        codefill_weights = (0.0,)
    starts, mids, _ = sample_points(corpus, n, 0, seed=1, split="valid")
    out: dict = {}
    for name, samples in (("identifier_starts", starts), ("mid_token", mids)):
        cases = []
        for s in tqdm(samples, desc=name, leave=False):
            doc = Document("file:///tune.py", s.prefix)
            ctx = build_context(doc, _end(s.prefix))
            named = {}
            if codefill is not None:
                head = s.prefix[: len(s.prefix) - len(ctx.partial)]
                named = codefill_names(codefill, head, ctx)
            if bytelevel is not None:
                found = exact_candidates(bytelevel, ctx)
            else:
                found = model_candidates(lm, vocab, ctx, mode)
            cases.append((ctx, found, named, s.truth))
        out[name] = {
            f"{w}/{cw}": rank_metrics(
                [[c.text for c in rank(f, ctx, 10, w, nm, cw)] for ctx, f, nm, _ in cases],
                [truth for *_, truth in cases],
            )
            for w in weights
            for cw in codefill_weights
        }
    return out


LINE_WEIGHTS = (0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 0.5, 0.9)


def sweep_lines(
    model: Path, corpus: Path, n: int, weights: tuple[float, ...] = LINE_WEIGHTS
) -> dict:
    """Line exact match and edit similarity of the ghost text (healed, the default beam) for
    each weight on the document's own lines, keyed by weight; "repeats" counts the samples
    whose line started as another line of the file did."""
    lm = OnnxDecoder(model)
    vocab = decoding.Vocab(lm)
    settings = EngineSettings()
    _, _, samples = sample_points(corpus, 0, n, seed=1, split="valid")
    cases, with_repeats = [], 0
    for s in tqdm(samples, desc="lines", leave=False):
        ctx = build_context(Document("file:///tune.py", s.prefix), _end(s.prefix))
        prompt = line_prompt(lm, ctx, "healing")
        n_tokens = settings.max_inline_tokens
        text, _ = decoding.beam_line(lm, vocab, prompt, settings.line_beam, n_tokens)
        repeats, scored = line_repeats(ctx), []
        if repeats:
            with_repeats += 1
            rests = repeat_candidates(text, repeats)
            scored = decoding.score_lines(lm, vocab, prompt, rests, n_tokens)
        cases.append((ctx, text, repeats, scored, s.truth))
    out: dict = {"repeats": with_repeats}
    for w in weights:
        preds = [
            clean_inline(ctx.line_prefix, choose_line(text, sc, rep, w) if rep else text, "")
            for ctx, text, rep, sc, _ in cases
        ]
        out[str(w)] = line_scores(preds, [truth for *_, truth in cases])
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m fillpoint.training.tune --model DIR`: print the sweep as JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/release")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--mid-token", choices=("healing", "naive", "bytelevel"), default="healing")
    p.add_argument(
        "--lines", type=int, default=0, help="sweep the ghost text's weight on N lines instead"
    )
    args = p.parse_args(argv)
    try:
        verify_release(Path(args.model))
    except EngineError as exc:
        raise SystemExit(f"tune: --model: {exc}") from None
    if args.lines:
        lines = sweep_lines(Path(args.model), Path(args.corpus), args.lines)
        print(f"{lines['repeats']} of {args.lines} lines start as another line of their file")
        for w, m in lines.items():
            if w != "repeats":
                print(f"  weight {w:<6} exact {m['exact']:.3f} edit sim {m['edit_sim']:.1f}")
        print(json.dumps(lines))
        return 0
    result = sweep(Path(args.model), Path(args.corpus), args.n, mode=args.mid_token)
    for name, rows in result.items():
        print(name)
        for w, m in rows.items():
            scores = f"top1 {m['top1']:.3f} top5 {m['top5']:.3f} mrr {m['mrr10']:.3f}"
            print(f"  file/codefill={w:<9} {scores}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
