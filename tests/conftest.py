"""Fixtures shared by all test folders; keep this small."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def release_model_dir() -> Path:
    """A released model folder: $FILLPOINT_MODEL if set, else models/release; skip without one."""
    folder = Path(os.environ.get("FILLPOINT_MODEL") or REPO / "models" / "release")
    if not (folder / "model.onnx").is_file():
        pytest.skip(f"no released model in {folder} (model.onnx missing)")
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny release (2 layers x 64, stdlib sample) built once per session; ~10-60 s of CPU."""
    pytest.importorskip("torch", reason="building a model needs the `train` extra")
    from fillpoint.training.tiny import build_tiny_release

    root = tmp_path_factory.mktemp("tiny")
    return build_tiny_release(root / "work", root / "release")


@pytest.fixture(scope="session")
def tiny_run_dir(tiny_model_dir: Path) -> Path:
    """The training run behind `tiny_model_dir`: checkpoint/, metrics.jsonl, loss.png."""
    return tiny_model_dir.parent / "work" / "run"


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """One torch thread for tiny models: a second one only adds contention on 2 cores."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_fp32_model_dir(
    tiny_model_dir: Path, tiny_run_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny release with an fp32 model.onnx: exact enough to check decoding against."""
    from fillpoint.models.pycoder import from_pretrained
    from fillpoint.training.export import export_onnx, sha256

    out = tmp_path_factory.mktemp("tiny-fp32") / "release"
    shutil.copytree(tiny_model_dir, out)
    export_onnx(from_pretrained(tiny_run_dir / "checkpoint"), out / "model.onnx")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = sha256(out / "model.onnx")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out
