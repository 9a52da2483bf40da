"""Tokenization research toolkit: vocabulary classes, identifier splits, mixture inference."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fillpoint.training.research import cli
from fillpoint.training.research.bias import cut_points, kl
from fillpoint.training.research.bpe import merges_of, train_bpe
from fillpoint.training.research.mixture import (
    PairCounter,
    build_constraints,
    solve_mixture,
    word_counts,
)
from fillpoint.training.research.report import md_table
from fillpoint.training.research.segments import (
    SplitStats,
    boundaries,
    split_source,
    subwords,
)
from fillpoint.training.research.sources import chunks, is_test_path
from fillpoint.training.research.vocab import byte_decoder, classify_entry, vocab_profile
from fillpoint.training.tokenizer import new_tokenizer


def _raw(text: str) -> str:
    """A vocabulary entry (byte-level alphabet) for `text`."""
    table = {b: ch for ch, b in byte_decoder().items()}
    return "".join(table[b] for b in text.encode("utf-8"))


@pytest.mark.parametrize(
    ("text", "kind", "script"),
    [
        (" return", "word_initial", None),
        ("items", "identifier_inner", None),
        ("_init", "identifier_inner", None),
        ("        ", "indent_run", None),
        ("\n    ", "newline_ws", None),
        (" ", "other_ws", None),
        ("x", "single_char", "Latin"),
        ("(", "single_char", "Common"),
        ("é", "single_char", "Latin"),
        ("ж", "single_char", "Cyrillic"),
        ("\x00", "control", "Common"),
        ("):", "punctuation", None),
        (" 1024", "number", None),
        ("x=", "mixed", None),
    ],
)
def test_classify_hand_made_entries(text: str, kind: str, script: str | None) -> None:
    assert classify_entry(_raw(text)) == (kind, script)


def test_partial_utf8_and_special_entries() -> None:
    assert classify_entry(_raw("ж")[:1]) == ("partial_utf8", None)
    assert classify_entry("<|endoftext|>", special=True) == ("special", None)
    vocab = {_raw(t): i for i, t in enumerate([" def", "ab", "ж", "\t\t", "<|pad|>"])}
    vocab["<|pad|>"] = 4
    classes, scripts = vocab_profile(vocab, {"<|pad|>"})
    assert classes == Counter(
        word_initial=1, identifier_inner=1, single_char=1, indent_run=1, special=1
    )
    assert scripts == Counter(Cyrillic=1)


def test_identifier_words_and_boundaries() -> None:
    assert subwords("max_items") == ["max", "items"]
    assert subwords("HTTPServerError2") == ["HTTP", "Server", "Error", "2"]
    assert boundaries("max_items") == {3, 4}
    assert boundaries("assertEqual") == {6}
    assert boundaries("value") == set()


def test_split_metric_on_hand_cases() -> None:
    stats = SplitStats()
    stats.add("max_items", ["max", "_items"])  # cut on the boundary
    stats.add("assertEqual", ["assert", "Eq", "ual"])  # one cut on it, one inside a word
    stats.add("setdefault", ["set", "default"])  # one word: the cut is off-boundary
    stats.add("self_test", ["self_test"])  # a compound kept whole
    summary = stats.summary()
    assert stats.cuts == 4 and stats.cuts_at_boundary == 2
    assert summary["cut_precision"] == pytest.approx(0.5)
    assert summary["boundary_recall"] == pytest.approx(2 / 3)
    assert summary["compound_whole"] == pytest.approx(1 / 3)


def test_split_source_separates_code_docstrings_comments() -> None:
    src = '"""Module doc."""\nimport os  # why\n\n\ndef f(x):\n    """F."""\n    return x.y\n'
    seg = split_source(src)
    assert seg is not None
    assert seg.docstring == ['"""Module doc."""', '"""F."""']
    assert seg.comment == ["# why"]
    assert "Module" not in seg.code and "why" not in seg.code and "return x.y" in seg.code
    assert seg.identifiers == [" os", " f", "x", " x", "y"]
    assert split_source("def f(:\n  )\n\t]") is None


def test_test_paths() -> None:
    assert is_test_path("pkg/tests/test_a.py") and is_test_path("test_x.py")
    assert is_test_path("pkg/a_test.py") and not is_test_path("pkg/testing_utils.py")


def _toy(alphabet: str, rng: random.Random, n: int = 2000) -> Counter:
    """Word counts of random words over `alphabet`."""
    words = ("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7))) for _ in range(n))
    return Counter(words)


def _mixture_merges(cats: list[Counter], weights: list[float], steps: int) -> list:
    """Exact BPE on the weighted mixture (the reference trainer the LP inverts)."""
    mix: Counter = Counter()
    for words, w in zip(cats, weights, strict=True):
        total = sum(len(k) * v for k, v in words.items())
        for k, v in words.items():
            mix[k] += w * v / total
    counter, merges = PairCounter(mix), []
    for _ in range(steps):
        top = counter.top(1)
        merges.append(top[0])
        counter.merge(top[0])
    return merges


def test_lp_recovers_an_exact_synthetic_mixture() -> None:
    rng = random.Random(0)
    cats = [_toy(a, rng) for a in ("abcde", "cdefg", "aeiouxy", "bdfhjk", "klmnoa")]
    weights = [0.1, 0.35, 0.2, 0.3, 0.05]
    merges = _mixture_merges(cats, weights, 80)
    est, info = solve_mixture(build_constraints(merges, cats, top_k=10))
    assert info["objective"] == pytest.approx(0.0, abs=1e-9)
    assert np.abs(est - weights).max() < 0.01


def test_pair_counter_stays_consistent_after_merges() -> None:
    rng = random.Random(1)
    words = _toy("abcab", rng, 500)
    counter = PairCounter(words)
    for _ in range(15):
        counter.merge(counter.top(1)[0])
    fresh: Counter = Counter()
    for w, n in zip(counter.words, counter.freq, strict=True):
        for pair in zip(w, w[1:], strict=False):
            fresh[pair] += n
    assert {p: n for p, n in counter.counts.items() if n} == dict(fresh)
    assert fresh[counter.top(1)[0]] == max(fresh.values())


def test_md_table() -> None:
    assert md_table(["a", "b"], [[1, 0.5]]) == "| a | b |\n|---|---|\n| 1 | 0.500 |"


def test_quality_cli_writes_report(small_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(small_corpus / "train.jsonl", corpus / "train.jsonl")
    shutil.copy(small_corpus / "train.jsonl", corpus / "test.jsonl")
    out = tmp_path / "out"
    argv = ["--out", str(out), "quality", "--corpus", str(corpus), "--train-chars", "60000"]
    argv += ["--test-rate", "0.3", "--ours-vocab", "300", "--gpt2-vocab", "300"]
    argv += ["--release", str(tmp_path / "none.json")]
    assert cli.main(argv) == 0
    report = (out / "tokenizer_quality.md").read_text()
    assert report.splitlines()[2].startswith("Reproduce: `fillpoint research --out")
    assert "| ours-300 |" in report and "| gpt2-regex-300 |" in report
    assert (out / "quality_compression.png").stat().st_size > 0


def test_lp_inverts_the_real_trainer_on_its_own_data() -> None:
    rng = random.Random(2)
    alphabets = ("abcdef", "defghi", "ghiabc", "xyzab")
    weights = [0.5, 0.2, 0.25, 0.05]
    per_cat = []
    for alphabet, w in zip(alphabets, weights, strict=True):
        words = [_word(alphabet, rng) for _ in range(int(w * 40000))]
        per_cat.append([" ".join(words[k : k + 50]) for k in range(0, len(words), 50)])
    texts = [t for cat in per_cat for t in cat]
    tok = train_bpe(texts, 256 + 5 + 120)
    pre = new_tokenizer().pre_tokenizer
    samples = [word_counts(cat, pre) for cat in per_cat]
    est, _ = solve_mixture(build_constraints(merges_of(tok), samples, top_k=10))
    chars = np.array([sum(map(len, cat)) for cat in per_cat], float)
    assert np.abs(est - chars / chars.sum()).max() < 0.01


def _word(alphabet: str, rng: random.Random) -> str:
    """A random word over `alphabet`."""
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 6)))


def test_chunks_cut_after_newlines() -> None:
    text = "a" * 5 + "\n" + "b" * 5 + "\n" + "c"
    assert chunks(text, 3) == ["aaaaa\n", "bbbbb\n", "c"]
    assert "".join(chunks(text, 1)) == text


def test_bias_cut_points_end_inside_identifiers() -> None:
    text = "x = 1\n" * 30 + "value = compute_total(items)\n"
    cuts = cut_points([text], 5, window=20, seed=0)
    assert len(cuts) == 1
    prompt, nxt = cuts[0]
    assert text.startswith(prompt, text.index(prompt)) and (prompt + nxt) in text
    assert prompt[-1].isalnum() or prompt[-1] == "_"
    assert nxt.isalnum() or nxt == "_"
    p = np.array([0.5, 0.5, 0.0])
    assert kl(p, p) == pytest.approx(0.0)
    assert kl(p, np.array([0.25, 0.75, 0.0])) > 0


def test_fillpoint_forwards_research(capsys: pytest.CaptureFixture[str]) -> None:
    from fillpoint.lsp import cli as lsp_cli

    assert lsp_cli.FORWARDED["research"][0] == "fillpoint.training.research.cli"
    with pytest.raises(SystemExit) as exc:
        lsp_cli.main(["research", "--help"])
    assert exc.value.code == 0
    assert "quality" in capsys.readouterr().out
