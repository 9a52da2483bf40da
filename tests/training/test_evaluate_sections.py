"""The evaluation end to end on the tiny model: every section runs and reports sane numbers."""

from __future__ import annotations

import argparse
import json
import shutil
import sysconfig
from pathlib import Path

import pytest

from fillpoint.training.eval_ablation import parse_ablation
from fillpoint.training.eval_infill import sample_spans
from fillpoint.training.eval_ngram import first_statement
from fillpoint.training.eval_statement import sample_statements
from fillpoint.training.evaluate import add_arguments, main
from fillpoint.training.tune import sweep, sweep_lines

pytestmark = pytest.mark.slow


HELD_OUT = ("textwrap", "shlex", "fnmatch", "glob", "queue", "sched", "colorsys", "bisect")


@pytest.fixture(scope="module")
def eval_corpus(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small corpus with standard-library modules it does not hold as the test split."""
    out = tmp_path_factory.mktemp("eval-corpus")
    for split in ("train", "valid"):
        shutil.copy(small_corpus / f"{split}.jsonl", out / f"{split}.jsonl")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    with (out / "test.jsonl").open("w") as f:
        for name in HELD_OUT:
            text = (stdlib / f"{name}.py").read_text(encoding="utf-8")
            f.write(json.dumps({"package": name, "path": f"{name}.py", "text": text}) + "\n")
    return out


def test_statement_samples_continue_their_statement(eval_corpus: Path) -> None:
    samples = sample_statements(eval_corpus, 5, seed=3)
    assert samples
    for s in samples:
        assert 2 <= len(s.truth) <= 8
        head = first_statement(s.head)[0]
        whole, _ = first_statement(s.head + _rest(eval_corpus, s))
        assert whole[len(head) : len(head) + len(s.truth)] == s.truth


def _rest(corpus: Path, sample) -> str:
    """The text after a sample's cut, found in the corpus file it came from."""
    for line in (corpus / "test.jsonl").read_text().splitlines():
        text = json.loads(line)["text"]
        if text.startswith(sample.prefix):
            return text[len(sample.prefix) :]
    raise AssertionError("sample not found in the corpus")


def test_spans_cut_the_file_in_three(eval_corpus: Path) -> None:
    texts = [json.loads(x)["text"] for x in (eval_corpus / "test.jsonl").read_text().splitlines()]
    samples = sample_spans(eval_corpus, 5, seed=1)
    assert samples
    for s in samples:
        assert s.prefix + s.truth + s.suffix in texts
        assert "\n" not in s.truth and s.truth.strip()


def test_parse_ablation() -> None:
    assert parse_ablation("no-type=runs/a/release") == ("no-type", Path("runs/a/release"))
    for bad in ("runs/a", "=x", "x="):
        with pytest.raises(Exception, match="NAME=PATH"):
            parse_ablation(bad)


def test_eval_command_on_tiny_model(
    tiny_model_dir: Path, eval_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "evaluation"
    argv = [
        *("--model", str(tiny_model_dir), "--corpus", str(eval_corpus)),
        *("--n-ident", "4", "--n-line", "3", "--n-statement", "4", "--n-infill", "4"),
        *("--ablation", f"again={tiny_model_dir}", "--out", str(out)),
    ]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    main(parser.parse_args(argv))
    results = json.loads((out / "results.json").read_text())
    stmt = results["statement"]
    assert set(stmt) == {"fillpoint (healing)", "trigram", "file copy"}
    for method in stmt.values():
        assert method["by_n"]["2"]["n"] == 4  # every sample has two tokens left
        for m in method["by_n"].values():
            assert 0 <= m["rouge_l"] <= 100 and 0 <= m["meteor"] <= 100
    modes = {"healing", "naive", "bytelevel", "healing (greedy)", "bytelevel (greedy)"}
    assert set(results["infill"]) == modes  # the ghost text's beam, and greedy decoding
    for m in results["infill"].values():
        assert m["n"] == 4 and 0 <= m["exact"] <= 1 and m["p50_ms"] > 0
    assert results["line_greedy"]["n"] == 3 and results["line_beam"] > 1
    assert results["line_decoder_only"]["n"] == 3 and results["line_repeat_weight"] > 0
    lines = results["line_tokens"]
    assert results["line_mode"] == "bytelevel"  # the shipped mode's ghost text
    assert set(lines) == {
        "fillpoint (bytelevel)",
        "fillpoint (bytelevel, greedy)",
        "trigram",
        "file copy",
    }
    assert all(m["n"] == 3 and 0 <= m["exact"] <= 1 for m in lines.values())
    trigram = results["token_accuracy_baselines"]["trigram"]
    assert trigram["tokens"] > 0 and 0 < trigram["accuracy"] < 1
    acc = results["token_accuracy"]  # the same tokens as the trigram; the exact count more
    assert acc["tokens"] == trigram["tokens"] < acc["exact"]["tokens"]
    # the same model twice: the ablation row must equal the main run's numbers
    rows = list(results["ablation"].values())
    assert len(rows) == 2 and rows[0] == pytest.approx(rows[1])
    for section in ("identifier_starts", "mid_token"):  # each mode with the decoder alone
        alone = {name for name in results[section] if name.startswith("decoder alone")}
        assert alone == {f"decoder alone ({mode})" for mode in ("healing", "naive", "bytelevel")}
    md = (out / "results.md").read_text()
    titles = ("statement completion", "random-span infilling", "ablation", "METEOR", "trigram:")
    titles += ("Exact count (fillpoint decoder)",)
    assert "greedy decoding: exact match" in md and "the beam without them" in md
    for title in titles:
        assert title in md
    assert (out / "statement.png").stat().st_size > 1000


@pytest.mark.parametrize("mode", ["healing", "bytelevel"])
def test_weight_sweep_in_each_mode(tiny_model_dir: Path, eval_corpus: Path, mode: str) -> None:
    result = sweep(tiny_model_dir, eval_corpus, 4, weights=(0.0, 0.5), mode=mode)
    for section in ("identifier_starts", "mid_token"):
        rows = result[section]
        assert set(rows) == {"0.0/0.0", "0.5/0.0"}  # no CodeFill in the tiny release
        assert len({m["n"] for m in rows.values()}) == 1  # every pair ranks the same samples
        assert all(0 <= m["top1"] <= m["top5"] <= 1 and m["n"] > 0 for m in rows.values())


def test_line_weight_sweep(tiny_model_dir: Path, eval_corpus: Path) -> None:
    result = sweep_lines(tiny_model_dir, eval_corpus, 6, weights=(0.0, 0.5))
    n = result["0.0"]["n"]  # the small corpus's valid split has few files
    assert 0 < n <= 6 and 0 <= result["repeats"] <= n
    for w in ("0.0", "0.5"):
        assert result[w]["n"] == n and 0 <= result[w]["exact"] <= 1
