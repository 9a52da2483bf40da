"""Compact checkpoint transport: int8 rows + bf16 vectors, restored to float32."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fillpoint.training.transport import main, restore_state, shrink_state


def test_round_trip_is_close_and_keeps_names_shapes_and_integer_tensors() -> None:
    g = torch.Generator().manual_seed(0)
    state = {
        "w": torch.randn(64, 32, generator=g) * 0.02,
        "zero_row": torch.zeros(4, 8),
        "bias": torch.randn(32, generator=g),
        "steps": torch.arange(5),
    }
    back = restore_state(shrink_state(state))
    assert back.keys() == state.keys()
    for name, value in state.items():
        assert back[name].shape == value.shape and back[name].dtype == value.dtype
    # per-row absmax int8: the error of each weight is at most half a step of its row's grid
    step = state["w"].abs().amax(dim=1, keepdim=True) / 127
    assert ((back["w"] - state["w"]).abs() <= step / 2 + 1e-7).all()
    assert torch.equal(back["zero_row"], state["zero_row"])
    assert torch.allclose(back["bias"], state["bias"], rtol=1e-2)
    assert torch.equal(back["steps"], state["steps"])


def test_shrunk_files_are_smaller_and_the_command_line_round_trips(tmp_path: Path) -> None:
    state = {"w": torch.randn(256, 256), "b": torch.randn(256)}
    src, small, back = (
        tmp_path / "a.safetensors",
        tmp_path / "b.safetensors",
        tmp_path / "c.safetensors",
    )
    save_file(state, str(src))
    assert main(["shrink", str(src), str(small)]) == 0
    assert main(["restore", str(small), str(back)]) == 0
    assert small.stat().st_size < src.stat().st_size / 3.5
    assert torch.allclose(load_file(str(back))["w"], state["w"], atol=0.05)
    assert main(["unknown"]) == 2
