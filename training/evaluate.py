"""Held-out evaluation of a release through the real engine, with baselines from the same run.

Every sample is a cut point in a test-package file; the document is the file up to the cut
(code being written left to right), so the engine and the baselines see the same text.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import keyword
import random
import time
import token
import tokenize
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fillpoint.completion.context import build_context
from fillpoint.completion.documents import Document
from fillpoint.completion.engine import Engine
from fillpoint.completion.types import EngineSettings, Position

from .corpus import iter_split
from .token_accuracy import token_accuracy
from .tokentypes import TYPE_ID, char_types

MODES = ("healing", "naive", "bytelevel")  # how the engine treats a prompt that ends mid-token


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
        code_lines = [m for m in _line_cuts(text)]
        if code_lines:
            cut, end = rng.choice(code_lines)
            lines.append(LineSample(text[:cut], text[cut:end]))
        if len(starts) >= n_ident and len(lines) >= n_line and len(mids) >= n_ident:
            break
    return starts[:n_ident], mids[:n_ident], lines[:n_line]


def _line_cuts(text: str) -> list[tuple[int, int]]:
    """(cut, end of line) at a token boundary in the middle of a code line.

    Lines that hold string or comment characters are skipped: the engine rightly offers
    nothing inside them, so they would measure the sampler, not the model.
    """
    kinds = char_types(text)
    skip = {TYPE_ID["STRING"], TYPE_ID["COMMENT"]}
    out = []
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        stripped = body.strip()
        in_code = not any(int(k) in skip for k in kinds[pos : pos + len(body)])
        if pos > 200 and len(stripped) > 8 and in_code:
            indent = len(body) - len(body.lstrip())
            bounds = [
                i
                for i in range(indent + 1, len(body) - 1)
                if (not body[i - 1].isalnum() or not body[i].isalnum()) and not body[i].isspace()
            ]
            if bounds:
                b = bounds[len(bounds) // 2]
                out.append((pos + b, pos + len(body)))
        pos += len(line)
    return out


def frequency_baseline(prefix: str, typed: str) -> list[str]:
    """Identifiers of the visible file ranked by frequency (the partial one excluded)."""
    counts = Counter(w for _, w in _names(prefix))
    if typed:
        counts[typed] -= 1
    return [w for w, n in counts.most_common() if n > 0 and w.startswith(typed) and w != typed]


def ngram_table(corpus: Path, max_files: int = 3000) -> dict[tuple[str, str], Counter]:
    """Trigram counts of names over train files (previous two lexical tokens -> next name)."""
    table: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for i, rec in enumerate(iter_split(corpus, "train")):
        if i >= max_files:
            break
        toks = _lex(rec["text"])
        for a, b, c in zip(toks, toks[1:], toks[2:], strict=False):
            if c.isidentifier() and not keyword.iskeyword(c):
                table[(a, b)][c] += 1
    return table


def _lex(text: str) -> list[str]:
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (token.NAME, token.OP, token.NUMBER, token.STRING):
                out.append(tok.string if tok.type != token.STRING else "<str>")
            elif tok.type == token.NEWLINE:
                out.append("<nl>")
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def ngram_baseline(table: dict, prefix: str, typed: str) -> list[str]:
    """The trigram model's names for the context, backed off by the file's frequencies."""
    head = prefix[: len(prefix) - len(typed)]
    toks = _lex(head + "\n")
    toks = toks[:-1] if toks and toks[-1] == "<nl>" and not head.endswith("\n") else toks
    key = tuple((["<s>", "<s>"] + toks)[-2:])
    ranked = [w for w, _ in table.get(key, Counter()).most_common(50) if w.startswith(typed)]
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


def rank_metrics(ranked_lists: list[list[str]], truths: list[str]) -> dict:
    """top-1, top-5 and MRR@10."""
    n = len(truths)
    top1 = top5 = mrr = 0.0
    for ranked, truth in zip(ranked_lists, truths, strict=True):
        ranked = ranked[:10]
        if truth in ranked:
            r = ranked.index(truth) + 1
            mrr += 1 / r
            top1 += r == 1
            top5 += r <= 5
    return {"top1": top1 / n, "top5": top5 / n, "mrr10": mrr / n, "n": n} if n else {"n": 0}


def engine_lists(engine: Engine, samples: list[IdentSample]) -> tuple[list[list[str]], list[float]]:
    """The engine's ranked lists (and latencies, ms) at each sample."""
    lists, times = [], []
    for i, s in enumerate(tqdm(samples, desc=f"engine ({engine.settings.mid_token})", leave=False)):
        doc = Document(f"file:///eval/{i}.py", s.prefix)  # own uri: no typed-through reuse
        lines = s.prefix.split("\n")
        pos = Position(len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2)
        t0 = time.perf_counter()
        res = engine.complete(doc, pos)
        times.append((time.perf_counter() - t0) * 1000)
        lists.append([c.text for c in res.items])
    return lists, times


def line_metrics(engine: Engine, samples: list[LineSample]) -> dict:
    """Exact match and edit similarity (difflib ratio x 100, as CodeXGLUE's fuzz.ratio)."""
    exact, sim, times = 0, 0.0, []
    for i, s in enumerate(tqdm(samples, desc="lines", leave=False)):
        doc = Document(f"file:///eval/{i}.py", s.prefix)  # own uri: no typed-through reuse
        lines = s.prefix.split("\n")
        pos = Position(len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2)
        t0 = time.perf_counter()
        pred = engine.inline(doc, pos).text
        times.append((time.perf_counter() - t0) * 1000)
        exact += pred.strip() == s.truth.strip()
        sim += difflib.SequenceMatcher(None, pred.strip(), s.truth.strip()).ratio() * 100
    n = len(samples)
    return {"exact": exact / n, "edit_sim": sim / n, "n": n, "p50_ms": _p50(times)}


def _p50(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2] if xs else 0.0


def evaluate(
    model: Path,
    corpus: Path,
    n_ident: int,
    n_line: int,
    seed: int = 0,
    split: str = "test",
    file_weight: float = EngineSettings().file_weight,
) -> dict:
    """All metrics for one release in one run."""
    starts, mids, lines = sample_points(corpus, n_ident, n_line, seed, split)
    table = ngram_table(corpus)
    results: dict = {"identifier_starts": {}, "cardinal_points": {}, "mid_token": {}}
    cardinal = [
        i
        for i, s in enumerate(starts)
        if build_context(Document("file:///e.py", s.prefix), _end(s.prefix)).cardinal
    ]
    truths = [s.truth for s in starts]
    baselines = {
        "file frequency": [frequency_baseline(s.prefix, "") for s in starts],
        "trigram": [ngram_baseline(table, s.prefix, "") for s in starts],
        "jedi": [jedi_baseline(s.prefix) for s in tqdm(starts, desc="jedi", leave=False)],
    }
    mid_baselines = {
        "file frequency": [frequency_baseline(s.prefix, s.truth[: s.typed]) for s in mids],
        "trigram": [ngram_baseline(table, s.prefix, s.truth[: s.typed]) for s in mids],
        "jedi": [jedi_baseline(s.prefix) for s in tqdm(mids, desc="jedi", leave=False)],
    }
    for mode in MODES:
        settings = EngineSettings(
            model_path=str(model), mid_token=mode, max_items=10, file_weight=file_weight
        )
        engine = Engine(settings)
        engine.load()
        if engine.error:
            raise SystemExit(engine.error)
        lists, times = engine_lists(engine, starts)
        baselines[f"fillpoint ({mode})"] = lists
        results["latency_p50_ms"] = results.get("latency_p50_ms", {}) | {mode: _p50(times)}
        mid_lists, mid_times = engine_lists(engine, mids)
        mid_baselines[f"fillpoint ({mode})"] = mid_lists
        results["latency_p50_ms"][f"{mode} (mid-token)"] = _p50(mid_times)
        if mode == "healing":
            results["line"] = line_metrics(engine, lines)
    results["token_accuracy"] = token_accuracy(model, corpus, n_files=30, seed=seed)
    for name, lists in baselines.items():
        results["identifier_starts"][name] = rank_metrics(lists, truths)
        results["cardinal_points"][name] = rank_metrics(
            [lists[i] for i in cardinal], [truths[i] for i in cardinal]
        )
    for name, lists in mid_baselines.items():
        results["mid_token"][name] = rank_metrics(lists, [s.truth for s in mids])
    return results


def _end(text: str) -> Position:
    lines = text.split("\n")
    return Position(len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2)


def to_markdown(results: dict) -> str:
    """The results as markdown tables."""
    out = [f"Command: `{results.get('command', '')}`", ""]
    for section in ("identifier_starts", "cardinal_points", "mid_token"):
        out += [f"### {section.replace('_', ' ')}", "", "| method | top-1 | top-5 | MRR@10 | n |"]
        out.append("|---|---|---|---|---|")
        for name, m in results[section].items():
            if m.get("n"):
                out.append(
                    f"| {name} | {100 * m['top1']:.1f}% | {100 * m['top5']:.1f}% | "
                    f"{m['mrr10']:.3f} | {m['n']} |"
                )
        out.append("")
    line = results.get("line")
    if line:
        out += ["### line completion (rest of the line, left context only)", ""]
        out.append(
            f"exact match {100 * line['exact']:.1f}%, edit similarity "
            f"{line['edit_sim']:.1f}, n = {line['n']}, p50 {line['p50_ms']:.0f} ms"
        )
        out.append("")
    acc = results.get("token_accuracy")
    if acc:
        out += ["### token-level accuracy (teacher-forced, CodeXGLUE rules)", ""]
        out.append(
            f"all lexical tokens {100 * acc['accuracy']:.1f}%, identifiers "
            f"{100 * acc['identifier_accuracy']:.1f}% "
            f"({acc['tokens']} tokens, {acc['files']} files)"
        )
        out.append("")
    lat = results.get("latency_p50_ms", {})
    if lat:
        out.append(
            "completion latency p50: " + ", ".join(f"{k} {v:.0f} ms" for k, v in lat.items())
        )
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `fillpoint train eval`."""
    p.add_argument("--model", default="models/release", help="release folder to evaluate")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--n-ident", type=int, default=400, help="identifier samples")
    p.add_argument("--n-line", type=int, default=200, help="line-completion samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--file-weight", type=float, default=EngineSettings().file_weight)
    p.add_argument("--split", default="test", choices=["test", "valid"], help="valid: for tuning")
    p.add_argument("--out", default="docs/evaluation", help="folder for results.json/.md")


def main(args: argparse.Namespace) -> None:
    """Run the evaluation and write results.json and results.md."""
    results = evaluate(
        Path(args.model),
        Path(args.corpus),
        args.n_ident,
        args.n_line,
        args.seed,
        args.split,
        args.file_weight,
    )
    results["command"] = (
        f"fillpoint train eval --model {args.model} --corpus {args.corpus} --split {args.split} "
        f"--n-ident {args.n_ident} --n-line {args.n_line} --seed {args.seed} "
        f"--file-weight {args.file_weight} --out {args.out}"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    md = to_markdown(results)
    (out / "results.md").write_text(md)
    print(md)
