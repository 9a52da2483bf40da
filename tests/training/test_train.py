"""Training: the schedule, a few real steps on synthetic tokens, checkpoints and resuming."""

from __future__ import annotations

import argparse
import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fillpoint.models.pycoder import PyCoder, PyCoderConfig, from_pretrained
from fillpoint.training import train as train_mod
from fillpoint.training.dataset import Batches
from fillpoint.training.tokentypes import TYPE_ID
from fillpoint.training.train import TrainConfig, load_optimizer, lr_at, save_checkpoint, train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

CHECKPOINT_FILES = [
    "config.json",
    "model.safetensors",
    "optimizer.safetensors",
    "trainer_state.json",
]
CYCLE = np.arange(100, 108)  # a sequence a 1-layer model memorises in a few dozen steps


def write_tokens(folder: Path, n: int = 4000) -> Path:
    """train/valid id and type arrays: the same short cycle of tokens, repeated."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.resize(CYCLE, n).astype(np.uint16)
    types = np.full(n, TYPE_ID["NAME"], dtype=np.uint8)
    for split in ("train", "valid"):
        np.save(folder / f"{split}.ids.npy", ids)
        np.save(folder / f"{split}.types.npy", types)
    return folder


def config(tmp_path: Path, tokenizer_path: Path, **kw: object) -> TrainConfig:
    """A model and batch small enough for a step to take milliseconds."""
    base = TrainConfig(
        data=str(write_tokens(tmp_path / "tokens")),
        tokenizer=str(tokenizer_path),
        out=str(tmp_path / "run"),
        n_layer=1,
        n_head=2,
        n_embd=32,
        block_size=16,
        batch_size=8,
        lr=1e-2,
        min_lr=1e-3,
        warmup_steps=2,
        max_steps=6,
        eval_every=3,
        eval_batches=1,
        fim_rate=0.0,
        bf16=False,
    )
    return replace(base, **kw)


def metrics(run: Path) -> list[dict]:
    """The rows of metrics.jsonl."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_lr_schedule_warms_up_then_decays_to_min_lr() -> None:
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx((1e-3 + 1e-4) / 2)
    assert lr_at(110, cfg) == pytest.approx(1e-4) and lr_at(500, cfg) == pytest.approx(1e-4)
    after = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))


def test_lr_schedule_with_a_time_budget_reaches_min_lr_at_the_deadline() -> None:
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=100_000, max_minutes=1.0)
    assert lr_at(5, cfg, elapsed=59.0) == pytest.approx(6e-4)  # warm-up still counts steps
    assert lr_at(20, cfg, elapsed=30.0) == pytest.approx((1e-3 + 1e-4) / 2)
    assert lr_at(20, cfg, elapsed=60.0) == pytest.approx(1e-4)
    assert lr_at(20, cfg, elapsed=0.0) == pytest.approx(lr_at(20, cfg))  # steps lead early on


def test_loss_falls_on_a_memorisable_sequence(tmp_path: Path, tokenizer_path: Path) -> None:
    cfg = config(tmp_path, tokenizer_path, max_steps=40, eval_every=20)
    run = train(cfg)
    rows = metrics(run)
    assert [r["step"] for r in rows] == list(range(40))
    first, last = rows[0]["loss"], np.mean([r["loss"] for r in rows[-3:]])
    assert first > 0.8 * math.log(512)  # starts near chance
    assert last < 0.25 * first
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(val) == 3 and val[-1] < 0.25 * val[0]  # steps 0, 20 and the last
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run / "train_config.json").read_text())["max_steps"] == 40


def test_bf16_autocast_step_runs(tmp_path: Path, tokenizer_path: Path) -> None:
    run = train(config(tmp_path, tokenizer_path, max_steps=2, bf16=True, fim_rate=0.5))
    assert all(math.isfinite(r["loss"]) for r in metrics(run))


class RecordingBatches(Batches):
    """Batches that remember every batch they hand out."""

    made: list[RecordingBatches] = []

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.drawn: list[np.ndarray] = []
        RecordingBatches.made.append(self)

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample and record."""
        out = super().sample(batch_size)
        self.drawn.append(out[0])
        return out


def first_train_batch(cfg: TrainConfig, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """Run training and return the first batch its train sampler drew (made before valid's)."""
    RecordingBatches.made = []
    monkeypatch.setattr(train_mod, "Batches", RecordingBatches)
    train(cfg)
    return RecordingBatches.made[0].drawn[0]


def test_resume_continues_the_step_count_with_fresh_batches(
    tmp_path: Path, tokenizer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path, tokenizer_path, max_steps=6)
    # non-periodic data, so that different windows look different
    rng = np.random.default_rng(0)
    np.save(tmp_path / "tokens" / "train.ids.npy", rng.integers(5, 512, 4000).astype(np.uint16))
    run = Path(cfg.out)
    first = first_train_batch(cfg, monkeypatch)
    saved = from_pretrained(run / "checkpoint")
    assert json.loads((run / "checkpoint" / "trainer_state.json").read_text())["step"] == 6

    resumed = first_train_batch(replace(cfg, max_steps=10), monkeypatch)
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 10 and state["tokens"] == 10 * 8 * 16
    assert [r["step"] for r in metrics(run)] == list(range(10))
    assert not np.array_equal(first, resumed)  # not a replay of the first run's windows
    # the resumed run trained the saved weights further
    after = from_pretrained(run / "checkpoint")
    assert not torch.equal(after.wte.weight, saved.wte.weight)

    # resuming a finished run trains nothing and leaves the step count alone
    train(replace(cfg, max_steps=10))
    assert json.loads((run / "checkpoint" / "trainer_state.json").read_text())["step"] == 10
    assert len(metrics(run)) == 10


def test_a_run_continues_from_another_runs_weights(tmp_path: Path, tokenizer_path: Path) -> None:
    first = train(config(tmp_path, tokenizer_path, max_steps=30))
    before = metrics(first)[-1]["val_loss"]
    cfg = config(tmp_path, tokenizer_path, out=str(tmp_path / "more"), max_steps=1, lr=1e-9)
    more = train(replace(cfg, init_from=str(first / "checkpoint")))
    # step 0 of the new run starts from the trained weights, not from random ones
    assert metrics(more)[0]["val_loss"] == pytest.approx(before, rel=0.05)
    fresh = train(replace(cfg, out=str(tmp_path / "fresh")))
    assert metrics(fresh)[0]["val_loss"] > 2 * before
    state = json.loads((more / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 1 and state["continued_from"]["step"] == 30

    wide = replace(cfg, out=str(tmp_path / "wide"), n_embd=64, init_from=str(first / "checkpoint"))
    with pytest.raises(SystemExit, match="shape"):
        train(wide)


def test_compiled_training_learns_and_counts_the_compile_in_its_time(
    tmp_path: Path, tokenizer_path: Path
) -> None:
    cfg = config(tmp_path, tokenizer_path, max_steps=30, eval_every=10, compile=True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run = train(cfg)
    assert not [w for w in seen if "torch.compile failed" in str(w.message)]
    rows = metrics(run)
    assert [r["step"] for r in rows] == list(range(30))
    assert np.mean([r["loss"] for r in rows[-3:]]) < 0.25 * rows[0]["loss"]
    # the first step's time stamp comes after the compile, which the budget counts
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    assert rows[0]["seconds"] > 0.5 and state["seconds"] >= rows[-1]["seconds"]


def test_a_compile_that_fails_leaves_eager_training_with_a_warning() -> None:
    model = torch.nn.Linear(2, 2)

    def trial(m: torch.nn.Module) -> None:
        m(torch.ones(1, 2)).sum().backward()
        raise RuntimeError("no compiler for this device")

    with pytest.warns(UserWarning, match="no compiler for this device"):
        assert train_mod.compiled(model, trial) is model
    assert all(p.grad is None for p in model.parameters())


def test_out_of_time_stops_and_saves(tmp_path: Path, tokenizer_path: Path) -> None:
    run = train(config(tmp_path, tokenizer_path, max_steps=50, max_minutes=1e-9))
    rows = metrics(run)
    assert len(rows) == 1 and "val_loss" in rows[0]
    assert json.loads((run / "checkpoint" / "trainer_state.json").read_text())["step"] == 1


def test_checkpoint_holds_no_pickles_and_restores_the_optimizer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PyCoder(PyCoderConfig(vocab_size=64, n_types=8, block_size=8, n_layer=1, n_embd=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids, types = torch.randint(0, 64, (2, 9)), torch.randint(0, 8, (2, 8))
    _, loss = model(ids[:, :-1], ids[:, 1:], types)
    loss.backward()
    opt.step()
    save_checkpoint(model, opt, {"step": 1}, tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == CHECKPOINT_FILES

    fresh = torch.optim.AdamW(model.parameters(), lr=1e-2)
    load_optimizer(fresh, tmp_path / "ckpt" / "optimizer.safetensors")
    assert len(fresh.state) == len(list(model.parameters()))
    for p in model.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(fresh.state[p][key], opt.state[p][key])


def test_each_step_names_a_missing_input_and_the_step_that_makes_it(tmp_path, capsys) -> None:
    from fillpoint.training.cli import INPUTS, build_parser, main

    with pytest.raises(SystemExit) as exc:
        main(["model", "--data", str(tmp_path), "--tokenizer", str(tmp_path / "t.json")])
    message = str(exc.value)
    assert f"{tmp_path / 'train.ids.npy'} not found (made by `fillpoint train encode`)" in message
    assert "(made by `fillpoint train tokenizer`)" in message
    assert not (tmp_path / "checkpoint").exists()  # nothing started
    with pytest.raises(SystemExit, match="vocab.json not found"):
        main(["codefill", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    # every step in the table is a real step, and each input it names is one of its options
    parser = build_parser()
    steps = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for step, inputs in INPUTS.items():
        options = {a.dest for a in steps.choices[step]._actions}
        assert {name for name, _, _ in inputs} <= options, step
