"""The whole pipeline at toy scale, in seconds: for tests and for trying the tooling out."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import torch

from . import tokenizer as tok_mod
from .dataset import encode_split
from .release import make_release
from .train import TrainConfig, train

TINY_MODULES = ("json", "collections", "unittest", "logging", "email", "http", "importlib")


def tiny_corpus(out: Path, max_chars: int = 400_000) -> Path:
    """A small corpus of standard-library modules in the corpus JSONL layout."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for m in TINY_MODULES for p in (root / m).rglob("*.py"))
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    with (out / "train.jsonl").open("w") as tr, (out / "valid.jsonl").open("w") as va:
        for i, path in enumerate(files):
            text = path.read_text(encoding="utf-8", errors="replace")
            rec = json.dumps({"package": path.parent.name, "path": path.name, "text": text})
            (va if i % 10 == 0 else tr).write(rec + "\n")
            total += len(text)
            if total > max_chars:
                break
    (out / "test.jsonl").write_text("")
    return out


def build_tiny_release(work: Path, out: Path, steps: int = 120) -> Path:
    """Corpus -> tokenizer -> encode -> train -> int8 ONNX release, all tiny."""
    corpus = tiny_corpus(work / "corpus")
    tok = tok_mod.train_tokenizer(tok_mod.sample_texts(corpus, 10**9), vocab_size=512)
    tok_path = work / "tokenizer.json"
    tok.save(str(tok_path))
    for split in ("train", "valid"):
        encode_split(corpus, split, tok_path, work / "tokens", jobs=1)
    cfg = TrainConfig(
        data=str(work / "tokens"),
        tokenizer=str(tok_path),
        out=str(work / "run"),
        n_layer=2,
        n_head=2,
        n_embd=64,
        block_size=128,
        batch_size=16,
        lr=3e-3,
        warmup_steps=10,
        max_steps=steps,
        eval_every=60,
        eval_batches=2,
        # At width 64 the casts cost more than bf16 matmuls save (9.4 vs 7.1 s here).
        bf16=False,
    )
    # Ops this small gain nothing from a second thread, and on a busy machine (another
    # training run, a parallel test worker) two spinning threads made each step 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_release(train(cfg), tok_path, out)
    finally:
        torch.set_num_threads(threads)
    return out
