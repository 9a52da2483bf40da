"""Evaluate a CodeFill model on held-out packages, at the same positions as training/evaluate.py.

Identifier top-1/top-5/MRR@10 at identifier starts, at the cardinal points among them and
with 1-3 characters typed (evaluate.sample_points, the same seed gives the same positions),
beside the file-frequency baseline of the same run; and statement completion in CodeFill's
name space: from a cut inside a line to the statement's <EOS>, exact match and ROUGE-L.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fillpoint.completion.codefill_runtime import CodeFillRuntime
from fillpoint.completion.codefill_streams import EOS, streams
from fillpoint.completion.documents import Document

from .eval_metrics import rank_metrics, rouge_l
from .evaluate import IdentSample, LineSample, frequency_baseline, sample_points


def load_runtime(model: Path, vocab: Path | None = None) -> CodeFillRuntime:
    """A release folder as it is, or a training checkpoint exported (int8) to a temporary one."""
    if (model / "model.onnx").exists():
        return CodeFillRuntime(model)
    from .export_codefill import release

    if vocab is None:
        raise ValueError("a checkpoint needs --vocab (the data folder's vocab.json)")
    out = Path(tempfile.mkdtemp(prefix="codefill-release-"))
    release(model, vocab, out)
    return CodeFillRuntime(out)


def identifier_metrics(rt: CodeFillRuntime, starts: list[IdentSample], mids: list[IdentSample]):
    """Rank tables of CodeFill and the frequency baseline, and CodeFill's p50 latency (ms)."""
    tables: dict[str, dict] = {"identifier_starts": {}, "cardinal_points": {}, "mid_token": {}}
    times: list[float] = []
    for section, samples in (("identifier_starts", starts), ("mid_token", mids)):
        lists, cardinal = [], []
        for i, s in enumerate(tqdm(samples, desc=section, leave=False)):
            doc = Document(f"file:///eval/{section}/{i}.py", s.prefix)
            t0 = time.perf_counter()
            result = rt.complete(doc, doc.position_at(len(s.prefix)))
            times.append((time.perf_counter() - t0) * 1000)
            lists.append([c.name for c in result.candidates])
            cardinal.append(result.cardinal)
        truths = [s.truth for s in samples]
        base = [frequency_baseline(s.prefix, s.prefix[len(s.prefix) - s.typed :]) for s in samples]
        tables[section] = {"codefill": rank_metrics(lists, truths)}
        tables[section]["file frequency"] = rank_metrics(base, truths)
        if section == "identifier_starts":
            idx = [i for i, c in enumerate(cardinal) if c]
            pick = [truths[i] for i in idx]
            tables["cardinal_points"] = {
                "codefill": rank_metrics([lists[i] for i in idx], pick),
                "file frequency": rank_metrics([base[i] for i in idx], pick),
            }
    tables["latency_p50_ms"] = float(np.median(times)) if times else 0.0
    return tables


def statement_truth(sample: LineSample) -> list[str] | None:
    """The names from the cut to the statement's end, or None if it goes on past the line."""
    before = len(streams(sample.prefix, prefix=True)[0])
    names = streams(sample.prefix + sample.truth + "\n", prefix=True)[0]
    rest = names[before:]
    return rest[: rest.index(EOS)] if EOS in rest else None


def statement_metrics(rt: CodeFillRuntime, lines: list[LineSample], max_names: int = 16) -> dict:
    """Exact match and ROUGE-L (names) of greedy statement completion up to <EOS>."""
    exact, rouge, n = 0.0, 0.0, 0
    for s in tqdm(lines, desc="statements", leave=False):
        truth = statement_truth(s)
        if not truth or len(truth) > max_names:
            continue
        pred = rt.statement(s.prefix, max_names)
        exact += pred == truth
        rouge += rouge_l(pred, truth)
        n += 1
    return {"exact_match": exact / n, "rouge_l": rouge / n, "n": n} if n else {"n": 0}


def evaluate(
    model: Path,
    corpus: Path,
    n_ident: int = 500,
    n_line: int = 300,
    seed: int = 0,
    split: str = "test",
    vocab: Path | None = None,
) -> dict:
    """All CodeFill metrics for one model in one run."""
    rt = load_runtime(model, vocab)
    starts, mids, lines = sample_points(corpus, n_ident, n_line, seed, split)
    results = identifier_metrics(rt, starts, mids)
    results["statement"] = statement_metrics(rt, lines)
    results["settings"] = {"n_ident": n_ident, "n_line": n_line, "seed": seed, "split": split}
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `fillpoint train codefill-eval`."""
    p.add_argument("--model", default="runs/codefill/checkpoint", help="release or checkpoint")
    p.add_argument("--vocab", default="data/codefill/vocab.json", help="for a checkpoint")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--split", default="test")
    p.add_argument("--n-ident", type=int, default=500)
    p.add_argument("--n-line", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results as JSON here")


def main(args: argparse.Namespace) -> None:
    """Run the evaluation and print (and optionally save) the results."""
    results = evaluate(
        Path(args.model), Path(args.corpus), args.n_ident, args.n_line, args.seed, args.split,
        Path(args.vocab),
    )  # fmt: skip
    text = json.dumps(results, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
