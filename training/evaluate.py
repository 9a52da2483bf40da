"""Held-out evaluation of a release through the real engine, with baselines from the same run.

Every sample is a cut point in a test-package file; the document is the file up to the cut
(code being written left to right), so the engine and the baselines see the same text.
Sections: identifier ranks (any `Ranker` can join those tables), line completion,
statement-level prediction (eval_statement), random-span infilling with the code after the
cursor in view (eval_infill), teacher-forced token accuracy, and ablations (eval_ablation).
"""

from __future__ import annotations

import argparse
import io
import json
import keyword
import random
import time
import token
import tokenize
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fillpoint.completion.context import build_context
from fillpoint.completion.documents import Document
from fillpoint.completion.types import EngineSettings

from .corpus import iter_split
from .eval_ablation import ablation_rows, parse_ablation
from .eval_baselines import line_baselines, line_table, ngram_token_accuracy
from .eval_engine import (
    SHIPPED,
    Ranker,
    _end,
    engine_ranker,
    inline_predictions,
    line_scores,
    load_engine,
    p50,
    rank_table,
    typed_part,
)
from .eval_infill import code_lines, infill_metrics, sample_spans
from .eval_metrics import rank_metrics
from .eval_ngram import Ngram
from .eval_report import plot_statement, to_markdown
from .eval_statement import (
    copy_predictor,
    model_predictor,
    ngram_predictor,
    sample_statements,
    statement_metrics,
)
from .token_accuracy import token_accuracy

MODES = ("healing", "naive", "bytelevel")  # how the engine treats a prompt that ends mid-token
ENSEMBLE_ROW = "fillpoint (bytelevel ensemble)"  # CodeFill in the byte-level search
ALONE_ROW = "decoder alone"  # the decoder without the file's and CodeFill's names
# Default sample counts: the whole run took 14 minutes on 2 busy cores, which leaves room
# for an ablation model or two (about 3 minutes each) within 25 minutes.
N_IDENT, N_LINE, N_STATEMENT, N_INFILL = 250, 120, 200, 150


@dataclass
class IdentSample:
    """An identifier occurrence: the text before it, how much of it is typed, the truth."""

    prefix: str
    typed: int
    truth: str


@dataclass
class LineSample:
    """A cut inside a line: the text before it and the rest of the line."""

    prefix: str
    truth: str


def _names(text: str) -> list[tuple[int, str]]:
    """(char offset, name) of every non-keyword NAME token of a file."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == token.NAME and not keyword.iskeyword(tok.string):
                out.append((starts[tok.start[0] - 1] + tok.start[1], tok.string))
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def sample_points(
    corpus: Path, n_ident: int, n_line: int, seed: int = 0, split: str = "test"
) -> tuple[list[IdentSample], list[IdentSample], list[LineSample]]:
    """Identifier starts, mid-token cuts (1-3 characters typed) and line cuts of held-out files."""
    rng = random.Random(seed)
    files = [r["text"] for r in iter_split(corpus, split)]
    rng.shuffle(files)
    starts, mids, lines = [], [], []
    for text in files:
        names = [(o, w) for o, w in _names(text) if o > 200]
        if names:
            for o, w in rng.sample(names, min(3, len(names))):
                starts.append(IdentSample(text[:o], 0, w))
            o, w = rng.choice(names)
            if len(w) >= 3:
                k = rng.randint(1, min(3, len(w) - 1))
                mids.append(IdentSample(text[: o + k], k, w))
        cuts = _line_cuts(text)
        if cuts:
            cut, end = rng.choice(cuts)
            lines.append(LineSample(text[:cut], text[cut:end]))
        if len(starts) >= n_ident and len(lines) >= n_line and len(mids) >= n_ident:
            break
    return starts[:n_ident], mids[:n_ident], lines[:n_line]


def _line_cuts(text: str) -> list[tuple[int, int]]:
    """(cut, end of line) at a token boundary in the middle of a code line."""
    out = []
    for pos, body in code_lines(text):
        indent = len(body) - len(body.lstrip())
        bounds = [
            i
            for i in range(indent + 1, len(body) - 1)
            if (not body[i - 1].isalnum() or not body[i].isalnum()) and not body[i].isspace()
        ]
        if bounds:
            b = bounds[len(bounds) // 2]
            out.append((pos + b, pos + len(body)))
    return out


def frequency_baseline(prefix: str, typed: str) -> list[str]:
    """Identifiers of the visible file ranked by frequency (the partial one excluded)."""
    counts = Counter(w for _, w in _names(prefix))
    if typed:
        counts[typed] -= 1
    return [w for w, n in counts.most_common() if n > 0 and w.startswith(typed) and w != typed]


def ngram_baseline(ngram: Ngram, prefix: str, typed: str) -> list[str]:
    """The trigram model's names for the context, backed off by the file's frequencies."""
    ranked = ngram.names(prefix[: len(prefix) - len(typed)], typed)
    for w in frequency_baseline(prefix, typed):
        if w not in ranked:
            ranked.append(w)
    return ranked


def jedi_baseline(prefix: str) -> list[str]:
    """What jedi, the static completer, proposes at the end of `prefix` (its own order)."""
    import jedi

    lines = prefix.split("\n")
    try:
        found = jedi.Script(code=prefix).complete(len(lines), len(lines[-1]))
    except Exception:  # noqa: BLE001 - jedi fails on some half-written code; count a miss
        return []
    return [c.name for c in found[:10]]


def baseline_rankers(ngram: Ngram) -> dict[str, Ranker]:
    """The baselines of the identifier tables, as rankers of the text before the cursor."""
    return {
        "file frequency": lambda p: frequency_baseline(p, typed_part(p)),
        "trigram": lambda p: ngram_baseline(ngram, p, typed_part(p)),
        "jedi": jedi_baseline,
    }


def identifier_tables(
    rankers: dict[str, Ranker],
    starts: list[IdentSample],
    mids: list[IdentSample],
    cardinal: list[int],
) -> tuple[dict[str, dict], dict[str, float]]:
    """Rank metrics of each ranker at identifier starts, cardinal points and mid-token cuts.

    The hook for other model families: any callable that ranks names for the text before
    the cursor gets rows in the same tables. Also returns each ranker's p50 latencies.
    """
    tables: dict[str, dict] = {"identifier_starts": {}, "cardinal_points": {}, "mid_token": {}}
    latency = {}
    truths = [s.truth for s in starts]
    for name, ranker in rankers.items():
        lists, latency[name] = rank_table(ranker, [s.prefix for s in starts], name)
        mid_lists, latency[f"{name} (mid-token)"] = rank_table(
            ranker, [s.prefix for s in mids], f"{name} (mid-token)"
        )
        tables["identifier_starts"][name] = rank_metrics(lists, truths)
        tables["cardinal_points"][name] = rank_metrics(
            [lists[i] for i in cardinal], [truths[i] for i in cardinal]
        )
        tables["mid_token"][name] = rank_metrics(mid_lists, [s.truth for s in mids])
    return tables, latency


def evaluate(
    model: Path,
    corpus: Path,
    n_ident: int,
    n_line: int,
    seed: int = 0,
    split: str = "test",
    file_weight: float = EngineSettings().file_weight,
    codefill_weight: float = EngineSettings().codefill_weight,
    n_statement: int = 0,
    n_infill: int = 0,
    ablations: dict[str, Path] | None = None,
    rankers: dict[str, Ranker] | None = None,
) -> dict:
    """All metrics for one release in one run; `rankers` add rows to the identifier tables."""
    starts, mids, lines = sample_points(corpus, n_ident, n_line, seed, split)
    ngram = Ngram.from_corpus(corpus)
    cardinal = [
        i
        for i, s in enumerate(starts)
        if build_context(Document("file:///e.py", s.prefix), _end(s.prefix)).cardinal
    ]
    engines = {mode: load_engine(model, mode, file_weight, codefill_weight) for mode in MODES}
    all_rankers = baseline_rankers(ngram)
    all_rankers |= {f"fillpoint ({mode})": engine_ranker(e) for mode, e in engines.items()}
    if codefill_weight > 0 and engines["bytelevel"].codefill_ready:
        # byte-level ensembling: CodeFill's names averaged in byte by byte, not mixed whole
        ensemble = load_engine(model, "bytelevel", file_weight, codefill_weight, byte_ensemble=True)
        all_rankers[ENSEMBLE_ROW] = engine_ranker(ensemble)
    if file_weight > 0 or codefill_weight > 0:
        # each mode with the decoder alone: the mixture's other names (the file's, CodeFill's)
        # do not depend on where the prompt ends, so they hide how far the decoder is off
        alone = {mode: load_engine(model, mode, 0.0, 0.0) for mode in MODES}
        all_rankers |= {f"{ALONE_ROW} ({mode})": engine_ranker(e) for mode, e in alone.items()}
    all_rankers |= rankers or {}
    results, latency = identifier_tables(all_rankers, starts, mids, cardinal)
    results["latency_p50_ms"] = {
        f"{mode}{where}": latency[f"fillpoint ({mode}){where}"]
        for mode in MODES
        for where in ("", " (mid-token)")
    }
    if ENSEMBLE_ROW in latency:
        results["latency_p50_ms"] |= {
            f"bytelevel ensemble{where}": latency[f"{ENSEMBLE_ROW}{where}"]
            for where in ("", " (mid-token)")
        }
    results["ranker_latency_p50_ms"] = latency
    heads, truths = [s.prefix for s in lines], [s.truth for s in lines]
    ghost, times = inline_predictions(engines[SHIPPED], [(h, "") for h in heads])
    results["line"] = line_scores(ghost, truths) | {"p50_ms": p50(times)}
    results["line_mode"] = SHIPPED
    # the same engine decoding greedily (lineBeam 1): what the ghost text's beam adds; and
    # greedy decoding in the other exact-prefix mode, for the infilling table
    greedy = {
        f"{mode} (greedy)": load_engine(model, mode, file_weight, codefill_weight, line_beam=1)
        for mode in dict.fromkeys((SHIPPED, "healing", "bytelevel"))
    }
    ghost1, times1 = inline_predictions(greedy[f"{SHIPPED} (greedy)"], [(h, "") for h in heads])
    results["line_greedy"] = line_scores(ghost1, truths) | {"p50_ms": p50(times1)}
    results["line_beam"] = engines[SHIPPED].settings.line_beam
    # the same beam without the document's own lines in the mixture: what they add
    weight = engines[SHIPPED].settings.line_repeat_weight
    if weight > 0:
        alone = load_engine(model, SHIPPED, file_weight, codefill_weight, line_repeat_weight=0)
        ghost0, times0 = inline_predictions(alone, [(h, "") for h in heads])
        results["line_decoder_only"] = line_scores(ghost0, truths) | {"p50_ms": p50(times0)}
        results["line_repeat_weight"] = weight
    engine_lines = {f"fillpoint ({SHIPPED})": ghost, f"fillpoint ({SHIPPED}, greedy)": ghost1}
    results["line_tokens"] = line_table(heads, truths, engine_lines, line_baselines(ngram))
    results["token_accuracy"] = token_accuracy(model, corpus, n_files=30, seed=seed)
    results["token_accuracy_baselines"] = {
        "trigram": ngram_token_accuracy(ngram, corpus, n_files=30, seed=seed)
    }
    if n_statement:
        predictors = {
            "fillpoint (healing)": model_predictor(model),
            "trigram": ngram_predictor(ngram),
            "file copy": copy_predictor(),
        }
        samples = sample_statements(corpus, n_statement, seed, split)
        results["statement"] = statement_metrics(predictors, samples)
    if n_infill:
        spans = sample_spans(corpus, n_infill, seed, split)
        results["infill"] = infill_metrics(engines | greedy, spans)
    if ablations:
        models = {str(model): model} | ablations
        results["ablation"] = ablation_rows(models, starts, lines, corpus, seed, file_weight)
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `fillpoint train eval`."""
    p.add_argument("--model", default="models/release", help="release folder to evaluate")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--n-ident", type=int, default=N_IDENT, help="identifier samples")
    p.add_argument("--n-line", type=int, default=N_LINE, help="line-completion samples")
    p.add_argument("--n-statement", type=int, default=N_STATEMENT, help="statement samples")
    p.add_argument("--n-infill", type=int, default=N_INFILL, help="random-span samples")
    p.add_argument(
        "--ablation",
        type=parse_ablation,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another release to compare in the ablation table (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--file-weight", type=float, default=EngineSettings().file_weight)
    p.add_argument(
        "--codefill-weight",
        type=float,
        default=EngineSettings().codefill_weight,
        help="share of the release's CodeFill name model, if it has one (0: decoder alone)",
    )
    p.add_argument("--split", default="test", choices=["test", "valid"], help="valid: for tuning")
    p.add_argument("--out", default="docs/evaluation", help="folder for results and plots")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces a run, with every default spelled out."""
    ablations = "".join(f" --ablation {name}={path}" for name, path in args.ablation)
    return (
        f"fillpoint train eval --model {args.model} --corpus {args.corpus} --split {args.split} "
        f"--n-ident {args.n_ident} --n-line {args.n_line} --n-statement {args.n_statement} "
        f"--n-infill {args.n_infill} --seed {args.seed} --file-weight {args.file_weight} "
        f"--codefill-weight {args.codefill_weight}{ablations} --out {args.out}"
    )


def model_digest(model: Path) -> str:
    """The model.onnx checksum from the release manifest: which weights the numbers are for."""
    try:
        return json.loads((model / "manifest.json").read_text())["files"]["model.onnx"]
    except (OSError, KeyError, json.JSONDecodeError):
        return ""


def main(args: argparse.Namespace) -> None:
    """Run the evaluation; write results.json, results.md and the plots."""
    t0 = time.monotonic()
    digest = model_digest(Path(args.model))
    results = evaluate(
        Path(args.model),
        Path(args.corpus),
        args.n_ident,
        args.n_line,
        args.seed,
        args.split,
        args.file_weight,
        args.codefill_weight,
        n_statement=args.n_statement,
        n_infill=args.n_infill,
        ablations=dict(args.ablation),
    )
    results["command"] = command_line(args)
    if model_digest(Path(args.model)) != digest:
        raise SystemExit(f"{args.model} changed during the run; its numbers would be mixed")
    results["model_sha256"] = digest
    results["wall_minutes"] = round((time.monotonic() - t0) / 60, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if "statement" in results:
        plot_statement(results["statement"], out / "statement.png")
    md = to_markdown(results)
    (out / "results.md").write_text(md)
    print(md)
