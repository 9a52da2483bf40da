"""`fillpoint research quality`: vocabulary classes, compression, fertility, identifier splits."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from .bpe import train_bpe
from .report import bar_plot, md_table
from .segments import KINDS, Segments, SplitStats, count_words, split_source
from .sources import corpus_records
from .vocab import CLASSES, script_coverage, vocab_from_spec, vocab_profile

CORPUS_TRAIN_CHARS = 167_000_000  # the train split's size, to turn a budget into a rate


@dataclass
class QualityConfig:
    """Sizes of the study; the defaults run in a few minutes on two cores."""

    corpus: Path = Path("data/corpus")
    release: Path = Path("models/release/tokenizer.json")
    train_chars: int = 4_000_000  # training sample of the tokenizers built here
    test_rate: float = 0.25  # share of test-split files evaluated
    ours_vocab: tuple[int, ...] = (4096, 8192, 16384)
    gpt2_vocab: int = 8192
    seed: int = 0


def _size(vocab: int) -> str:
    """4096 -> 4k; other sizes as they are."""
    return f"{vocab // 1024}k" if vocab % 1024 == 0 else str(vocab)


def build_tokenizers(cfg: QualityConfig) -> dict[str, Tokenizer]:
    """Ours at several vocabulary sizes, plain GPT-2-regex BPE, and the released tokenizer."""
    rate = min(1.0, 1.2 * cfg.train_chars / CORPUS_TRAIN_CHARS)
    texts, total = [], 0
    for rec in corpus_records(cfg.corpus, "train", rate, cfg.seed):
        texts.append(rec["text"])
        total += len(rec["text"])
        if total >= cfg.train_chars:
            break
    toks = {}
    for size in cfg.ours_vocab:
        toks[f"ours-{_size(size)}"] = train_bpe(texts, size)
    toks[f"gpt2-regex-{_size(cfg.gpt2_vocab)}"] = train_bpe(texts, cfg.gpt2_vocab, gpt2=True)
    if Path(cfg.release).is_file():
        toks["release-8k"] = Tokenizer.from_file(str(cfg.release))
    return toks


def identifier_cuts(tok: Tokenizer, spaced: str) -> tuple[str, list[int], int]:
    """(name, cut positions inside the name, token count) for one identifier as it appears."""
    enc = tok.encode(spaced, add_special_tokens=False)
    lead = len(spaced) - len(spaced.lstrip(" "))
    name = spaced[lead:]
    cuts = [end - lead for _, end in enc.offsets[:-1] if 0 < end - lead < len(name)]
    return name, cuts, len(enc.ids)


def measure(tok: Tokenizer, files: list[Segments], whole: list[str]) -> dict[str, float]:
    """Compression per kind, fertility, and identifier-split rates of one tokenizer."""
    out: dict[str, float] = {}
    for kind in KINDS:
        texts = [t for seg in files for t in seg.texts(kind) if t]
        tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
        chars = sum(len(t) for t in texts)
        out[f"cpt_{kind}"] = chars / max(tokens, 1)
        out[f"fert_{kind}"] = tokens / max(sum(count_words(t) for t in texts), 1)
    tokens = sum(len(e.ids) for e in tok.encode_batch(whole, add_special_tokens=False))
    out["cpt_all"] = sum(map(len, whole)) / max(tokens, 1)
    names = Counter(i for seg in files for i in seg.identifiers)
    stats, id_tokens = SplitStats(), 0
    for spaced, n in names.items():
        name, cuts, count = identifier_cuts(tok, spaced)
        stats.add_cuts(name, cuts, n)
        id_tokens += n * count
    out["tok_per_ident"] = id_tokens / max(stats.identifiers, 1)
    out.update(stats.summary())
    return out


def _main_table(toks: dict[str, Tokenizer], metrics: dict[str, dict[str, float]]) -> str:
    """The compression / fertility / identifier-split table."""
    rows = [
        [
            n,
            toks[n].get_vocab_size(),
            *[metrics[n][f"cpt_{k}"] for k in ("all", *KINDS)],
            *[metrics[n][f"fert_{k}"] for k in KINDS],
            metrics[n]["tok_per_ident"],
            100 * metrics[n]["cut_precision"],
            100 * metrics[n]["boundary_recall"],
            100 * metrics[n]["compound_whole"],
        ]
        for n in toks
    ]
    header = ["tokenizer", "vocab", "c/t all", "c/t code", "c/t docstring", "c/t comment"]
    header += ["t/w code", "t/w docstring", "t/w comment", "t/identifier"]
    header += ["cuts on boundary %", "boundaries cut %", "compounds whole %"]
    return md_table(header, rows, 3)


def run(cfg: QualityConfig, out_dir: Path) -> str:
    """Build and measure the tokenizers; the report body (markdown)."""
    start = time.time()
    toks = build_tokenizers(cfg)
    whole = [r["text"] for r in corpus_records(cfg.corpus, "test", cfg.test_rate, cfg.seed)]
    files = [s for s in map(split_source, whole) if s is not None]
    names = list(toks)
    metrics, classes, specs = {}, {}, {}
    for name, tok in toks.items():
        metrics[name] = measure(tok, files, whole)
        specs[name] = vocab_from_spec(json.loads(tok.to_str()))
        classes[name] = vocab_profile(*specs[name])
        print(f"{name}: {metrics[name]['cpt_all']:.3f} chars/token ({time.time() - start:.0f} s)")
    sizes = {k: sum(len(t) for s in files for t in s.texts(k)) for k in KINDS}
    class_rows = [
        [c, *[100 * classes[n][0][c] / max(sum(classes[n][0].values()), 1) for n in names]]
        for c in CLASSES
    ]
    prose = [t for s in files for t in s.docstring + s.comment]
    coverage = {n: script_coverage(specs[n][0], prose) for n in names}
    scripts = list(coverage[names[0]])[:10]
    cov_rows = [
        [s, coverage[names[0]][s][0], *[100 * coverage[n].get(s, (0, 0.0))[1] for n in names]]
        for s in scripts
    ]
    single = sorted({s for n in names for s in classes[n][1]})
    single_rows = [[s, *[classes[n][1].get(s, 0) for n in names]] for s in single]
    bar_plot(
        out_dir / "quality_compression.png",
        ["all", *KINDS],
        {n: [metrics[n][f"cpt_{k}"] for k in ("all", *KINDS)] for n in names},
        "characters per token",
        "Compression on the test split",
    )
    bar_plot(
        out_dir / "quality_vocab.png",
        list(CLASSES),
        {n: [r[1 + i] for r in class_rows] for i, n in enumerate(names)},
        "% of vocabulary",
        "Vocabulary classes",
    )
    body = [
        f"Tokenizers built here on {cfg.train_chars:,} characters of train files",
        f"(seed {cfg.seed}): `ours-*` use the project's pre-tokenizer (`PRETOKEN_PATTERN`,",
        "`_` is a word character), `gpt2-regex-*` GPT-2's regex; `release-8k` is the shipped",
        "tokenizer (trained on 40M characters).",
        f"Evaluated on {len(files)} test-split files ({cfg.test_rate:.0%} sample; "
        + ", ".join(f"{k} {v:,} chars" for k, v in sizes.items())
        + "), split with Python's `tokenize`: code = the file without docstrings and comments.",
        "",
        "## Compression, fertility, identifier splits",
        "",
        _main_table(toks, metrics),
        "",
        "c/t: characters per token (higher is better). t/w: tokens per word (word = run of word",
        "characters or one punctuation mark). t/identifier: tokens per identifier occurrence",
        "(with its leading space when it had one). Cuts on boundary: share of cuts inside an",
        "identifier at a snake_case/camelCase/digit boundary; boundaries cut: share of word",
        "boundaries with a cut; compounds whole: multi-word identifiers kept as one token.",
        "",
        "![compression](quality_compression.png)",
        "",
        "## Vocabulary classes (% of entries)",
        "",
        md_table(["class", *names], class_rows, 1),
        "",
        "![vocabulary](quality_vocab.png)",
        "",
        "word_initial: leading space + identifier-like; identifier_inner: identifier-like without",
        "the space; indent_run: 2+ spaces/tabs; partial_utf8: bytes that are not whole characters.",
        "",
        "## Scripts",
        "",
        "Non-ASCII characters in test-split docstrings and comments, and the share that is a",
        "single vocabulary entry (otherwise it costs 2-4 byte tokens):",
        "",
        md_table(["script", "chars", *[f"{n} %" for n in names]], cov_rows, 1)
        if cov_rows
        else "(no non-ASCII prose in this sample)",
        "",
        "Single-character entries per script:",
        "",
        md_table(["script", *names], single_rows, 0),
        "",
        f"Run time {time.time() - start:.0f} s.",
    ]
    return "\n".join(body)
