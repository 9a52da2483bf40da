"""Train the PyCoder-style decoder: CPU or CUDA, bf16 autocast, DDP under torchrun, resumable."""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tokenizers import Tokenizer
from tqdm import tqdm

from fillpoint.models.pycoder import PyCoder, PyCoderConfig, from_pretrained, save_pretrained

from .dataset import Batches
from .tokenizer import EOT, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX
from .tokentypes import N_TYPES


@dataclass
class TrainConfig:
    data: str = "data/tokens"  # folder with {split}.ids.npy / .types.npy
    tokenizer: str = "runs/tokenizer.json"
    out: str = "runs/pycoder"
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    block_size: int = 256
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 200
    max_steps: int = 20000
    max_minutes: float = 0.0  # stop (and save) after this long; 0 = no limit
    weight_decay: float = 0.1
    type_loss_weight: float = 0.1
    fim_rate: float = 0.5
    eval_every: int = 250
    eval_batches: int = 20
    seed: int = 1337
    bf16: bool = True  # autocast where the device supports it (AMX on these CPUs, CUDA)
    device: str = "auto"


def lr_at(step: int, cfg: TrainConfig, elapsed: float | None = None) -> float:
    """Linear warm-up, then cosine decay to min_lr at max_steps.

    With a wall-clock budget (max_minutes) and the seconds `elapsed` so far, the decay follows
    whichever comes first, steps or time, so a run cut by its budget still ends at min_lr.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.max_minutes and elapsed is not None:
        progress = max(progress, min(1.0, elapsed / (cfg.max_minutes * 60)))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def to_tensors(batch: tuple[np.ndarray, np.ndarray], device: str) -> tuple[torch.Tensor, ...]:
    """(inputs, token targets, type targets) on the device."""
    ids, types = (torch.from_numpy(a).to(device) for a in batch)
    return ids[:, :-1], ids[:, 1:], types[:, 1:]


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, batches: Batches, n: int, bs: int, amp, device: str):
    """Mean multitask loss over `n` fresh batches."""
    model.eval()
    losses = []
    for _ in range(n):
        x, y, t = to_tensors(batches.sample(bs), device)
        with amp():
            _, loss = model(x, y, t)
        losses.append(loss.item())
    model.train()
    return float(np.mean(losses))


def plot_losses(log_path: Path, png_path: Path) -> None:
    """Loss curve (train and valid) from the JSONL metrics log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    valid = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train", alpha=0.6)
    if valid:
        ax.plot(*zip(*valid, strict=True), label="valid", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (0.9 token + 0.1 type, nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def setup_device(cfg: TrainConfig) -> tuple[str, int, int]:
    """Device, rank and world size; joins the process group under torchrun."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world > 1:
        backend = "nccl" if device == "cuda" else "gloo"
        dist.init_process_group(backend)
        if device == "cuda":
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
    return device, rank, world


def train(cfg: TrainConfig) -> Path:
    """Run training; returns the output folder (checkpoint, metrics.jsonl, loss.png)."""
    device, rank, world = setup_device(cfg)
    master = rank == 0
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out)
    tok = Tokenizer.from_file(cfg.tokenizer)
    data = Path(cfg.data)

    def load(split: str, seed: int) -> Batches:
        ids = np.load(data / f"{split}.ids.npy", mmap_mode="r")
        types = np.load(data / f"{split}.types.npy", mmap_mode="r")
        fim = tuple(tok.token_to_id(t) for t in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE))
        return Batches(ids, types, cfg.block_size, fim, tok.token_to_id(EOT), cfg.fim_rate, seed)

    resume = out / "checkpoint"
    if (resume / "model.safetensors").exists():
        model = from_pretrained(resume)
        state = json.loads((resume / "trainer_state.json").read_text())
    else:
        mcfg = PyCoderConfig(
            vocab_size=tok.get_vocab_size(),
            n_types=N_TYPES,
            block_size=cfg.block_size,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_embd=cfg.n_embd,
            type_loss_weight=cfg.type_loss_weight,
        )
        model, state = PyCoder(mcfg), {"step": 0, "tokens": 0, "seconds": 0.0}
    # A resumed run draws new windows instead of replaying those of the steps already done.
    train_batches = load("train", cfg.seed + rank + world * state["step"])
    valid_batches = load("valid", cfg.seed + 10_000)
    model.to(device)
    raw = model
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None
        )
    decay = [p for n, p in raw.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in raw.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        fused=device.startswith("cuda"),
    )
    opt_path = resume / "optimizer.safetensors"
    if opt_path.exists():
        load_optimizer(opt, opt_path)
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    if dev_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True

    def amp():
        return torch.autocast(dev_type, dtype=torch.bfloat16) if cfg.bf16 else nullcontext()

    if master:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log = (out / "metrics.jsonl").open("a") if master else None
    start_step, t0 = state["step"], time.time() - state["seconds"]
    bar = tqdm(
        range(start_step, cfg.max_steps),
        initial=start_step,
        total=cfg.max_steps,
        disable=not master,
        desc="train",
    )
    step = start_step - 1  # a run resumed at its last step trains nothing and stays there
    # The next batch is drawn on a second thread while the device runs this step.
    prefetch = ThreadPoolExecutor(1)
    pending = prefetch.submit(train_batches.sample, cfg.batch_size)
    for step in bar:
        lr = lr_at(step, cfg, time.time() - t0)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = pending.result()
        pending = prefetch.submit(train_batches.sample, cfg.batch_size)
        x, y, t = to_tensors(batch, device)
        with amp():
            _, loss = model(x, y, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(raw.parameters(), 1.0)
        opt.step()
        state["tokens"] += x.numel() * world
        elapsed = time.time() - t0
        out_of_time = bool(cfg.max_minutes) and elapsed > cfg.max_minutes * 60
        if world > 1 and cfg.max_minutes:
            # Clocks differ between ranks: a rank that stops alone leaves the others
            # waiting in the next all-reduce forever, so rank 0 decides for all.
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.broadcast(flag, 0)
            out_of_time = bool(flag.item())
        if master:
            row = {"step": step, "loss": loss.item(), "lr": lr, "seconds": elapsed}
            if step % cfg.eval_every == 0 or step == cfg.max_steps - 1 or out_of_time:
                row["val_loss"] = estimate_loss(
                    raw, valid_batches, cfg.eval_batches, cfg.batch_size, amp, device
                )
                state.update(step=step + 1, seconds=elapsed)
                save_checkpoint(raw, opt, state, resume)
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{state['tokens'] / elapsed:.0f}")
        if out_of_time:
            break
    prefetch.shutdown(cancel_futures=True)
    if master:
        state.update(step=step + 1, seconds=time.time() - t0)
        save_checkpoint(raw, opt, state, resume)
        log.close()
        plot_losses(out / "metrics.jsonl", out / "loss.png")
    if world > 1:
        dist.destroy_process_group()
    return out


def save_checkpoint(model: PyCoder, opt: torch.optim.Optimizer, state: dict, folder: Path) -> None:
    """Model (safetensors), optimizer moments (safetensors) and trainer state (JSON)."""
    from safetensors.torch import save_file

    save_pretrained(model, folder)
    tensors = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for key, value in opt.state.get(p, {}).items():
                if torch.is_tensor(value):
                    tensors[f"{gi}.{pi}.{key}"] = value.detach().cpu().contiguous()
    save_file(tensors, str(folder / "optimizer.safetensors"))
    (folder / "trainer_state.json").write_text(json.dumps(state))


def load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """Restore AdamW moments saved by save_checkpoint."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"{gi}.{pi}.")}
            if st:
                opt.state[p] = {k: v.to(p.device) for k, v in st.items()}
