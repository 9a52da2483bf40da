"""DDP: two CPU processes under torchrun (gloo) end every step with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import config, metrics

from fillpoint.models.pycoder import from_pretrained

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("ddp_worker.py")
TIMEOUT_S = 240  # two interpreters importing torch on a busy 2-core machine, then 8 steps


def torchrun(cfg_path: Path) -> subprocess.CompletedProcess:
    """Two ranks on this machine, one thread each, bounded in time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*cmd, str(WORKER), str(cfg_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_two_ranks_end_with_identical_parameters(tmp_path: Path, tokenizer_path: Path) -> None:
    # fim_rate 0.5 and different seeds per rank: each rank sees different batches;
    # a time limit makes the ranks agree on stopping every step (it never runs out here)
    cfg = config(tmp_path, tokenizer_path, max_steps=8, eval_every=4, fim_rate=0.5, max_minutes=60)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(asdict(cfg)))
    proc = torchrun(cfg_path)
    assert proc.returncode == 0, proc.stderr[-4000:]

    run = Path(cfg.out)
    rank0, rank1 = load_file(str(run / "rank0.st")), load_file(str(run / "rank1.st"))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    saved = from_pretrained(run / "checkpoint").state_dict()
    assert all(torch.equal(saved[k], v) for k, v in rank0.items())

    # only rank 0 logs; tokens count both ranks' batches
    assert [r["step"] for r in metrics(run)] == list(range(8))
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 8 and state["tokens"] == 8 * 2 * cfg.batch_size * cfg.block_size
