"""Train the CodeFill-style dual name/type model: CPU or CUDA, bf16 autocast, DDP, resumable.

Each step picks one task for the whole batch (the same on every rank): TTP (next type) with
probability 0.2, TVP (next name) 0.4 and SC (statement completion) 0.4, as CodeFill did; a
weighted-sum loss was not used. SC is teacher-forced like TVP, but only the names that
continue a statement already begun are scored, up to and including its <EOS>: every cut
point inside a statement is trained at once, and statement starts (after <EOS>, <INDENT>,
<DEDENT>, <eot>) are left to TVP. The loss always adds the soft-sharing penalty.

The learning rate is train.py's: warm-up over `warmup_steps`, then a cosine to `min_lr` at
progress = max(step / max_steps, elapsed / max_minutes), so a run cut by its wall-clock limit
still ends at the low learning rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fillpoint.models.codefill import (
    TASKS,
    CodeFill,
    CodeFillConfig,
    from_pretrained,
    save_pretrained,
)

from .dataset import Batches
from .train import (
    RunConfig,
    autocast,
    fit,
    load_or_init,
    make_optimizer,
    setup_device,
    wrap_ddp,
)

IGNORE = -100


@dataclass
class CodeFillTrainConfig(RunConfig):
    data: str = "data/codefill"  # folder with {split}.names.npy / .types.npy / vocab.json
    out: str = "runs/codefill"
    dropout: float = 0.0
    share_lambda: float = 1e-3  # soft parameter sharing weight
    p_ttp: float = 0.2  # task probabilities per step (renormalised)
    p_tvp: float = 0.4
    p_sc: float = 0.4
    names_only: bool = False  # ablation: no type stream, no TTP
    log_every: int = 10


def task_probs(cfg: CodeFillTrainConfig) -> np.ndarray:
    """Probabilities of TASKS (ttp, tvp, sc); no TTP for the names-only ablation."""
    p = np.asarray([0.0 if cfg.names_only else cfg.p_ttp, cfg.p_tvp, cfg.p_sc], dtype=np.float64)
    return p / p.sum()


def statement_starts(vocab_names: list[str]) -> list[int]:
    """Ids after which a new statement starts: its first name is not an SC target."""
    return [vocab_names.index(n) for n in ("<EOS>", "<INDENT>", "<DEDENT>", "<eot>")]


def make_batch(batch: tuple[np.ndarray, np.ndarray], task: str, starts: torch.Tensor, device):
    """(names, types, name targets, type targets) on the device; SC masks statement starts."""
    names, types = (torch.from_numpy(a).to(device) for a in batch)
    x_names, x_types = names[:, :-1], types[:, :-1]
    y_names, y_types = names[:, 1:].clone(), types[:, 1:]
    if task == "sc":
        y_names[torch.isin(x_names, starts)] = IGNORE
    return x_names, x_types, y_names, y_types


@torch.no_grad()
def estimate_losses(model: CodeFill, batches: Batches, cfg, starts, amp, device) -> dict:
    """Mean cross-entropy per task (no sharing penalty) over `eval_batches` batches."""
    model.eval()
    sums = dict.fromkeys(TASKS, 0.0)
    for _ in range(cfg.eval_batches):
        batch = batches.sample(cfg.batch_size)
        for task in TASKS if not cfg.names_only else ("tvp", "sc"):
            x, t, yn, yt = make_batch(batch, task, starts, device)
            with amp():
                logits, _ = model(x, t, task=task)
            y = yt if task == "ttp" else yn
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=IGNORE
            )
            sums[task] += loss.item() / cfg.eval_batches
    model.train()
    return {f"val_{k}": v for k, v in sums.items() if v}


def train(cfg: CodeFillTrainConfig) -> Path:
    """Run training; returns the output folder (checkpoint, metrics.jsonl, loss.png)."""
    device, rank, world = setup_device(cfg)
    torch.manual_seed(cfg.seed + rank)
    out, data = Path(cfg.out), Path(cfg.data)
    vocab_names = json.loads((data / "vocab.json").read_text())["names"]
    type_names = json.loads((data / "vocab.json").read_text())["types"]
    eot = vocab_names.index("<eot>")
    starts = torch.tensor(statement_starts(vocab_names), device=device)

    def load(split: str, seed: int) -> Batches:
        names = np.load(data / f"{split}.names.npy", mmap_mode="r")
        types = np.load(data / f"{split}.types.npy", mmap_mode="r")
        return Batches(names, types, cfg.block_size, (0, 0, 0), eot, 0.0, seed)

    resume = out / "checkpoint"

    def init() -> CodeFill:
        return CodeFill(
            CodeFillConfig(
                len(vocab_names), len(type_names), dropout=cfg.dropout,
                share_lambda=cfg.share_lambda, names_only=cfg.names_only, **cfg.model_shape(),
            )
        )  # fmt: skip

    model, state = load_or_init(resume, from_pretrained, init)
    train_batches = load("train", cfg.seed + rank + world * state["step"])
    valid_batches = load("valid", cfg.seed + 10_000)
    tasks_rng = np.random.default_rng(cfg.seed + state["step"])  # the same on every rank
    probs = task_probs(cfg)
    model.to(device)
    # A step runs one decoder: the other's embeddings and head get no gradient.
    raw, model = model, wrap_ddp(model, device, world, find_unused=True)
    opt = make_optimizer(raw, cfg, device, resume / "optimizer.safetensors")
    amp = autocast(device, cfg.bf16)
    if rank == 0:
        print(f"parameters {raw.num_params():,}, device {device}")

    def step_loss(batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, int, dict]:
        task = TASKS[int(tasks_rng.choice(len(TASKS), p=probs))]
        x, t, yn, yt = make_batch(batch, task, starts, device)
        with amp():
            _, loss = model(x, t, yn, yt, task=task, ignore_index=IGNORE)
        return loss, x.numel(), {"task": task}

    def evaluate() -> dict:
        row = estimate_losses(raw, valid_batches, cfg, starts, amp, device)
        return {**row, "val_loss": row["val_tvp"], "penalty": raw.sharing_penalty().item()}

    where = (rank, world, device)
    fit(cfg, raw, opt, state, train_batches, step_loss, evaluate, save_pretrained, where,
        ylabel="loss (nats; valid: next name)")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m fillpoint.training.train_codefill ...`: the same flags as `fillpoint train
    codefill`, on a machine whose environment lacks the server's packages (tree-sitter)."""
    import argparse

    from .cli import _add_dataclass_args

    p = argparse.ArgumentParser(prog="python -m fillpoint.training.train_codefill")
    _add_dataclass_args(p, CodeFillTrainConfig)
    out = train(CodeFillTrainConfig(**vars(p.parse_args(argv))))
    print(f"checkpoint: {out / 'checkpoint'}")


if __name__ == "__main__":
    main()
