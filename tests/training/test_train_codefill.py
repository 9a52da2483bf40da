"""CodeFill data, training and evaluation: encoding, SC targets, a tiny run, the metrics."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fillpoint.completion.codefill_streams import EOS, N_TYPES, NUM, Vocab
from fillpoint.models.codefill import CodeFill, CodeFillConfig, from_pretrained, save_pretrained
from fillpoint.training.codefill_data import build
from fillpoint.training.evaluate import LineSample
from fillpoint.training.evaluate_codefill import evaluate, statement_truth
from fillpoint.training.train_codefill import (
    CodeFillTrainConfig,
    make_batch,
    statement_starts,
    task_probs,
    train,
)


def test_build_writes_aligned_arrays_and_a_vocab(small_corpus: Path, tmp_path: Path) -> None:
    infos = build(small_corpus, tmp_path, vocab_size=300, max_files=6, jobs=1)
    assert [i["split"] for i in infos] == ["train", "valid", "test"]
    vocab = Vocab.from_file(tmp_path / "vocab.json")
    assert vocab.n_vocab == 300 and vocab.names[:4] == ["<pad>", "<unk>", "<eot>", EOS]
    for info in infos:
        names = np.load(tmp_path / f"{info['split']}.names.npy")
        types = np.load(tmp_path / f"{info['split']}.types.npy")
        assert names.dtype == np.uint16 and types.dtype == np.uint8
        assert len(names) == len(types) == info["tokens"]
        assert (names == vocab.ids["<eot>"]).sum() == info["files"]
        assert types.max(initial=0) < N_TYPES and names.max(initial=0) < 300
    assert infos[0]["tokens"] > 1000 and infos[0]["unk_rate"] < 0.5


def test_sc_targets_skip_statement_starts() -> None:
    vocab = SPECIALS_VOCAB
    starts = torch.tensor(statement_starts(vocab))
    ids = [vocab.index(n) for n in ["x", "=", "y", EOS, "z", "(", ")", EOS, "x"]]
    batch = (np.asarray([ids]), np.zeros((1, len(ids)), np.int64))
    _, _, tvp, _ = make_batch(batch, "tvp", starts, "cpu")
    _, _, sc, _ = make_batch(batch, "sc", starts, "cpu")
    assert tvp[0].tolist() == ids[1:]
    assert sc[0].tolist() == ids[1:4] + [-100] + ids[5:8] + [-100]


SPECIALS_VOCAB = ["<pad>", "<unk>", "<eot>", EOS, "<INDENT>", "<DEDENT>", "x", "=", "y", "z",
                  "(", ")"]  # fmt: skip


def test_task_probabilities() -> None:
    assert task_probs(CodeFillTrainConfig()).tolist() == pytest.approx([0.2, 0.4, 0.4])
    names_only = task_probs(CodeFillTrainConfig(names_only=True))
    assert names_only.tolist() == pytest.approx([0.0, 0.5, 0.5])


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("names_only", [False, True])
def test_tiny_training_run_saves_and_resumes(tmp_path: Path, names_only: bool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Vocab(SPECIALS_VOCAB).save(data / "vocab.json")
    cycle = [SPECIALS_VOCAB.index(n) for n in ["x", "=", "y", EOS, "z", "(", ")", EOS]]
    names = np.resize(np.asarray(cycle, np.uint16), 3000)
    types = np.resize(np.asarray([1, 2, 3, 4, 5, 6, 7, 4], np.uint8), 3000)
    for split in ("train", "valid"):
        np.save(data / f"{split}.names.npy", names)
        np.save(data / f"{split}.types.npy", types)
    cfg = CodeFillTrainConfig(
        data=str(data), out=str(tmp_path / "run"), n_layer=1, n_head=2, n_embd=32,
        block_size=16, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=2, max_steps=30,
        eval_every=10, eval_batches=1, log_every=1, bf16=False, device="cpu",
        names_only=names_only,
    )  # fmt: skip
    run = train(cfg)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(30))
    assert {r["task"] for r in rows} == ({"tvp", "sc"} if names_only else {"ttp", "tvp", "sc"})
    val = [r for r in rows if "val_tvp" in r]
    assert len(val) == 4 and val[-1]["val_tvp"] < 0.5 * val[0]["val_tvp"]
    assert ("val_ttp" in val[-1]) != names_only
    assert (run / "loss.png").exists()
    model = from_pretrained(run / "checkpoint")
    assert model.config.names_only == names_only and model.config.n_names == len(SPECIALS_VOCAB)
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 30
    train(replace(cfg, max_steps=33))  # resumes from step 30
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 32


def test_statement_truth_runs_to_the_end_of_the_statement() -> None:
    sample = LineSample("def f(a):\n    x = a.", "total + g(1)")
    assert statement_truth(sample) == ["total", "+", "g", "(", NUM, ")"]
    assert statement_truth(LineSample("x = f(", "a,")) is None  # the call goes on


@pytest.mark.usefixtures("torch_one_thread")
def test_evaluate_a_checkpoint_end_to_end(small_corpus: Path, tmp_path: Path) -> None:
    build(small_corpus, tmp_path / "data", vocab_size=400, max_files=4, jobs=1)
    vocab = Vocab.from_file(tmp_path / "data" / "vocab.json")
    torch.manual_seed(0)
    cfg = CodeFillConfig(vocab.n_vocab, N_TYPES, 256, n_layer=1, n_head=2, n_embd=16)
    model = CodeFill(cfg)
    with torch.no_grad():  # trained decoders differ; identical ones share ONNX initializers
        for p in model.type_decoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_pretrained(model, tmp_path / "checkpoint")
    results = evaluate(
        tmp_path / "checkpoint", small_corpus, n_ident=6, n_line=6, split="valid",
        vocab=tmp_path / "data" / "vocab.json",
    )  # fmt: skip
    for section in ("identifier_starts", "mid_token"):
        table = results[section]
        assert table["codefill"]["n"] == table["file frequency"]["n"] > 0
        assert all(0 <= table[r]["mrr10"] <= 1 for r in ("codefill", "file frequency"))
    assert results["cardinal_points"]["codefill"]["n"] <= 6
    assert results["statement"]["n"] >= 0 and results["latency_p50_ms"] > 0
