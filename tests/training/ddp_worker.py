"""Run by test_ddp.py under torchrun: train() on every rank, then save each rank's weights."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from fillpoint.training import train as train_mod

MADE: list[train_mod.PyCoder] = []


class RecordedPyCoder(train_mod.PyCoder):
    """PyCoder that remembers its instances, so the worker can save what its rank trained."""

    def __init__(self, cfg: train_mod.PyCoderConfig) -> None:
        super().__init__(cfg)
        MADE.append(self)


def main() -> None:
    """Train with the JSON config in argv[1]; write {out}/rank{RANK}.safetensors."""
    cfg = train_mod.TrainConfig(**json.loads(Path(sys.argv[1]).read_text()))
    train_mod.PyCoder = RecordedPyCoder
    train_mod.train(cfg)
    state = MADE[0].state_dict()
    state.pop("lm_head.weight")  # tied to wte.weight; safetensors refuses shared storage
    rank = int(os.environ["RANK"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(Path(cfg.out) / f"rank{rank}.st"))


if __name__ == "__main__":
    main()
