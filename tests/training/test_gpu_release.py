"""training/gpu_release.sh end to end on CPU: pack layout in, compact checkpoints out and back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fillpoint.models.pycoder import from_pretrained

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "training" / "gpu_release.sh"
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "batch_size": 2, "block_size": 32}
TINY |= {"eval_every": 5, "eval_batches": 1, "warmup_steps": 2}

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git"
)


def make_pack(pack: Path, tokenizer_path: Path, tmp_path: Path) -> None:
    """What `gpu_release.sh pack` writes, from test-sized data."""
    pack.mkdir()
    archive = ["git", "archive", "--format=tar", "-o", str(pack / "src.tar"), "HEAD"]
    subprocess.run(archive + ["lsp", "completion", "training", "models"], cwd=REPO, check=True)
    shutil.copy(tokenizer_path, pack / "tokenizer.json")
    tokens = tmp_path / "data" / "tokens"
    tokens.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        np.save(tokens / f"{split}.ids.npy", rng.integers(5, 500, 3000).astype(np.uint16))
        np.save(tokens / f"{split}.types.npy", rng.integers(0, 20, 3000).astype(np.uint8))
        (tokens / f"{split}.json").write_text(json.dumps({"split": split, "tokens": 3000}))
    with tarfile.open(pack / "tokens.tar.xz", "w:xz") as tar:
        tar.add(tokens, arcname="tokens")


def cpu_env(tmp_path: Path, **extra: str) -> dict:
    """The environment of a dry run on CPU, one thread per trainer, work under tmp_path."""
    base = {"DEVICE": "cpu", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return os.environ | base | {"TMPDIR": str(tmp_path), **extra}


def run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_train_then_unpack_restores_every_pycoder_run(tmp_path: Path, tokenizer_path: Path) -> None:
    pack, out, runs = tmp_path / "pack", tmp_path / "out", tmp_path / "runs"
    make_pack(pack, tokenizer_path, tmp_path)
    env = cpu_env(tmp_path, EXTRA=json.dumps(TINY))
    trained = run("train", str(pack), str(out), "0.05", env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    parts = sorted(out.glob("checkpoints.tar.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    restored = run("unpack", str(out), str(runs), env=env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    # no CodeFill data in the pack: only the PyCoder runs (two shapes; without the type loss)
    names = ["pycoder-l", "pycoder-m", "pycoder-m-notype", "pycoder-m6"]
    assert sorted(p.name for p in runs.iterdir()) == names
    for name, weight in (("pycoder-m", 0.1), ("pycoder-m-notype", 0.0)):
        cfg = json.loads((runs / name / "train_config.json").read_text())
        assert cfg["data"] == "data/tokens" and cfg["out"] == str(runs / name)
        assert cfg["type_loss_weight"] == weight and cfg["device"] == "cpu"
        assert cfg["dropout"] == 0.1  # many passes over the corpus on a GPU
        assert str(tmp_path) not in json.dumps({k: cfg[k] for k in ("data", "tokenizer")})
        model = from_pretrained(runs / name / "checkpoint")
        assert model.config.n_embd == 32 and (runs / name / "train.log").exists()
        state = json.loads((runs / name / "checkpoint" / "trainer_state.json").read_text())
        assert state["step"] > 0 and state["hardware"].startswith("CPU")


@pytest.mark.slow
def test_only_the_named_runs_train(tmp_path: Path, tokenizer_path: Path) -> None:
    pack, out, runs = tmp_path / "pack", tmp_path / "out", tmp_path / "runs"
    make_pack(pack, tokenizer_path, tmp_path)
    env = cpu_env(tmp_path, EXTRA=json.dumps({**TINY, "max_steps": 3}), ONLY="pycoder-m")
    trained = run("train", str(pack), str(out), "1", env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert run("unpack", str(out), str(runs), env=env).returncode == 0
    assert [p.name for p in runs.iterdir()] == ["pycoder-m"]


def test_usage_is_printed_for_an_unknown_command() -> None:
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 2 and "pack PACK" in done.stdout
