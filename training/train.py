"""Train the PyCoder-style decoder: CPU or CUDA, bf16 autocast, DDP under torchrun, resumable."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable
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
class RunConfig:
    """What every training run shares: shape, schedule, budget, evaluation, device."""

    data: str = ""
    out: str = ""
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
    eval_every: int = 250
    eval_batches: int = 20
    log_every: int = 1  # metrics.jsonl rows every n steps (reading a loss waits for the GPU)
    seed: int = 1337
    bf16: bool = True  # autocast where the device supports it (AMX on these CPUs, CUDA)
    device: str = "auto"

    def model_shape(self) -> dict:
        """The model config fields that come from the run config."""
        return {k: getattr(self, k) for k in ("block_size", "n_layer", "n_head", "n_embd")}


@dataclass
class TrainConfig(RunConfig):
    data: str = "data/tokens"  # folder with {split}.ids.npy / .types.npy
    out: str = "runs/pycoder"
    tokenizer: str = "runs/tokenizer.json"
    type_loss_weight: float = 0.1
    fim_rate: float = 0.5
    # Dropout of a new model (attention and residual branches, training only), for runs that
    # pass over the corpus many times (the GPU release runs: about 11). A continued run keeps
    # the dropout of the model it starts from.
    dropout: float = 0.0
    # Start from this checkpoint's weights (a fresh optimizer and schedule, step 0) instead of
    # random ones: more training for a released model, on any device. Ignored on resume.
    init_from: str = ""
    # torch.compile the training step (fused kernels: worth it on a GPU, whose steps are
    # short; a failed compile falls back to eager with a warning instead of ending the run)
    compile: bool = False


def hardware_name(device: str, world: int) -> str:
    """What trained the model, for the model card: the GPU's name or the CPU thread count."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"CPU ({torch.get_num_threads()} threads)"
    return f"{world} x {name}" if world > 1 else name


def lr_at(step: int, cfg: RunConfig, elapsed: float | None = None) -> float:
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


def plot_losses(
    log_path: Path, png_path: Path, ylabel: str = "loss (0.9 token + 0.1 type, nats)"
) -> None:
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
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def setup_device(cfg: RunConfig) -> tuple[str, int, int]:
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


def make_optimizer(
    model: torch.nn.Module, cfg: RunConfig, device: str, resume: Path
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only; moments restored from `resume` if it exists."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        fused=device.startswith("cuda"),
    )
    if resume.exists():
        load_optimizer(opt, resume)
    return opt


def past_deadline(elapsed: float, cfg: RunConfig, world: int, device: str) -> bool:
    """True once the wall-clock budget is spent, decided by rank 0 for all ranks."""
    out_of_time = bool(cfg.max_minutes) and elapsed > cfg.max_minutes * 60
    if world > 1 and cfg.max_minutes:
        # Clocks differ between ranks: a rank that stops alone leaves the others
        # waiting in the next all-reduce forever, so rank 0 decides for all.
        flag = torch.tensor([float(out_of_time)], device=device)
        dist.broadcast(flag, 0)
        out_of_time = bool(flag.item())
    return out_of_time


def train(cfg: TrainConfig) -> Path:
    """Run training; returns the output folder (checkpoint, metrics.jsonl, loss.png)."""
    device, rank, world = setup_device(cfg)
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

    def init() -> PyCoder:
        n = tok.get_vocab_size()
        extra = {"dropout": cfg.dropout, "type_loss_weight": cfg.type_loss_weight}
        return PyCoder(PyCoderConfig(n, N_TYPES, **extra, **cfg.model_shape()))

    if cfg.init_from and not (resume / "model.safetensors").exists():
        model, state = continue_from(Path(cfg.init_from), cfg)
    else:
        model, state = load_or_init(resume, from_pretrained, init)
    # A resumed run draws new windows instead of replaying those of the steps already done.
    train_batches = load("train", cfg.seed + rank + world * state["step"])
    valid_batches = load("valid", cfg.seed + 10_000)
    model.to(device)
    raw, model = model, wrap_ddp(model, device, world)
    opt = make_optimizer(raw, cfg, device, resume / "optimizer.safetensors")
    amp = autocast(device, cfg.bf16)
    if cfg.compile:
        began, shape = time.time(), (cfg.batch_size, cfg.block_size + 1)
        model = compiled(model, lambda m: trial_step(m, shape, amp, device))
        state["seconds"] += time.time() - began  # the budget and the schedule count it

    def step_loss(batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, int, dict]:
        x, y, t = to_tensors(batch, device)
        with amp():
            _, loss = model(x, y, t)
        return loss, x.numel(), {}

    def evaluate() -> dict:
        bs = cfg.batch_size
        return {"val_loss": estimate_loss(raw, valid_batches, cfg.eval_batches, bs, amp, device)}

    where = (rank, world, device)
    fit(cfg, raw, opt, state, train_batches, step_loss, evaluate, save_pretrained, where)
    return out


def trial_step(model: torch.nn.Module, shape: tuple[int, int], amp, device: str) -> None:
    """One forward and backward pass over a zero batch of the training shape; no update."""
    zeros = np.zeros(shape, np.int64)
    x, y, t = to_tensors((zeros, zeros), device)
    with amp():
        _, loss = model(x, y, t)
    loss.backward()
    model.zero_grad(set_to_none=True)


def compiled(model: torch.nn.Module, trial: Callable[[torch.nn.Module], None]) -> torch.nn.Module:
    """`model` under torch.compile, built by running `trial` on it once; the eager model, with
    a warning, where compiling fails (no compiler for the device, an unsupported operation)."""
    fast = torch.compile(model)
    try:
        trial(fast)
    except Exception as err:  # noqa: BLE001 - any failure to compile leaves eager training
        warnings.warn(f"torch.compile failed, training eagerly: {err}", stacklevel=2)
        model.zero_grad(set_to_none=True)
        return model
    return fast


def fresh_state() -> dict:
    """The trainer state of a run at its first step."""
    return {"step": 0, "tokens": 0, "seconds": 0.0}


def load_or_init(
    folder: Path, load: Callable[[Path], torch.nn.Module], init: Callable[[], torch.nn.Module]
) -> tuple[torch.nn.Module, dict]:
    """The checkpoint in `folder` and its trainer state, or a new model at step 0."""
    if (folder / "model.safetensors").exists():
        return load(folder), json.loads((folder / "trainer_state.json").read_text())
    return init(), fresh_state()


def continue_from(folder: Path, cfg: TrainConfig) -> tuple[PyCoder, dict]:
    """The weights in checkpoint `folder` at step 0 of a new run, with what trained them
    (its trainer state) kept under "continued_from" for the model card."""
    if not (folder / "model.safetensors").exists():
        raise SystemExit(f"--init-from {folder}: no model.safetensors there")
    model = from_pretrained(folder)
    have = {k: getattr(model.config, k) for k in cfg.model_shape()}
    if have != cfg.model_shape():
        raise SystemExit(f"--init-from {folder}: its shape {have} is not {cfg.model_shape()}")
    model.config.type_loss_weight = cfg.type_loss_weight
    before = folder / "trainer_state.json"
    state = fresh_state()
    if before.exists():
        state["continued_from"] = {"path": str(folder), **json.loads(before.read_text())}
    return model, state


def wrap_ddp(
    model: torch.nn.Module, device: str, world: int, find_unused: bool = False
) -> torch.nn.Module:
    """The model under DistributedDataParallel when there are several ranks."""
    if world == 1:
        return model
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused
    )


def autocast(device: str, bf16: bool):
    """A context factory: bf16 autocast on the device's type, or nothing; TF32 on CUDA."""
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    if dev_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return lambda: torch.autocast(dev_type, dtype=torch.bfloat16) if bf16 else nullcontext()


def fit(
    cfg: RunConfig,
    raw: torch.nn.Module,
    opt: torch.optim.Optimizer,
    state: dict,
    batches: Batches,
    step_loss: Callable[[object], tuple[torch.Tensor, int, dict]],
    evaluate: Callable[[], dict],
    save_model: Callable[[torch.nn.Module, Path], None],
    where: tuple[int, int, str],
    ylabel: str = "loss (0.9 token + 0.1 type, nats)",
) -> None:
    """The training loop: schedule, steps, budget, metrics.jsonl, checkpoints and loss.png.

    Batches are drawn on a second thread while the device runs the step before; `step_loss`
    turns one into (loss, tokens, extra metrics); `evaluate` returns validation metrics with a
    "val_loss"; checkpoints (model, optimizer, trainer state) go to {out}/checkpoint.
    """
    rank, world, device = where
    master, out = rank == 0, Path(cfg.out)

    def save(state: dict) -> None:
        save_checkpoint(raw, opt, state, out / "checkpoint", save_model)

    def sample() -> object:
        return batches.sample(cfg.batch_size)

    if master:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log = (out / "metrics.jsonl").open("a") if master else None
    state["hardware"] = hardware_name(device, world)
    start_step, t0 = state["step"], time.time() - state["seconds"]
    bar = tqdm(
        range(start_step, cfg.max_steps),
        initial=start_step,
        total=cfg.max_steps,
        disable=not master,
        desc="train",
    )
    step = start_step - 1  # a run resumed at its last step trains nothing and stays there
    prefetch = ThreadPoolExecutor(1)
    pending = prefetch.submit(sample)
    for step in bar:
        lr = lr_at(step, cfg, time.time() - t0)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = pending.result()
        pending = prefetch.submit(sample)
        loss, tokens, extra = step_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(raw.parameters(), 1.0)
        opt.step()
        state["tokens"] += tokens * world
        elapsed = time.time() - t0
        out_of_time = past_deadline(elapsed, cfg, world, device)
        at_eval = step % cfg.eval_every == 0 or step == cfg.max_steps - 1 or out_of_time
        if master and (at_eval or step % cfg.log_every == 0):
            row = {"step": step, "loss": loss.item(), "lr": lr, "seconds": elapsed, **extra}
            if at_eval:
                row.update(evaluate())
                state.update(step=step + 1, seconds=elapsed)
                save(state)
            log.write(json.dumps(row) + "\n")
            log.flush()
            shown = {"loss": f"{row['loss']:.3f}", "tok_s": f"{state['tokens'] / elapsed:.0f}"}
            if cfg.max_minutes:  # the budget, not max_steps, ends such a run: show what is left
                shown["left"] = f"{max(0.0, cfg.max_minutes - elapsed / 60):.1f}min"
            bar.set_postfix(shown)
        if out_of_time:
            break
    prefetch.shutdown(cancel_futures=True)
    if master:
        state.update(step=step + 1, seconds=time.time() - t0)
        save(state)
        log.close()
        plot_losses(out / "metrics.jsonl", out / "loss.png", ylabel)
    if world > 1:
        # every rank waits for the master's checkpoint and plot before the group goes away:
        # a rank that tore its gloo group down while the other still held it could abort
        # ("terminate called without an active exception") on its way out
        dist.barrier()
        dist.destroy_process_group()


def save_checkpoint(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    state: dict,
    folder: Path,
    save_model: Callable = save_pretrained,
) -> None:
    """Model (safetensors), optimizer moments (safetensors) and trainer state (JSON)."""
    save_model(model, folder)
    save_optimizer(opt, folder / "optimizer.safetensors")
    (folder / "trainer_state.json").write_text(json.dumps(state))


def save_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """AdamW moments as safetensors, keyed by group and parameter index."""
    from safetensors.torch import save_file

    tensors = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for key, value in opt.state.get(p, {}).items():
                if torch.is_tensor(value):
                    tensors[f"{gi}.{pi}.{key}"] = value.detach().cpu().contiguous()
    save_file(tensors, str(path))


def load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """Restore AdamW moments saved by save_checkpoint."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"{gi}.{pi}.")}
            if st:
                opt.state[p] = {k: v.to(p.device) for k, v in st.items()}
