"""Export a trained PyCoder checkpoint to ONNX (KV cache, int8) and assemble a release folder."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from fillpoint.models.pycoder import PyCoder, PyCoderStep, from_pretrained

OPSET = 17


def export_onnx(model: PyCoder, path: Path) -> None:
    """Write the step graph (ids, past) -> (logits, present) with dynamic batch and lengths."""
    model = model.float().eval()
    model.untie()
    step = PyCoderStep(model)
    cfg = model.config
    head = cfg.n_embd // cfg.n_head
    ids = torch.zeros((2, 3), dtype=torch.long)
    past = torch.zeros((cfg.n_layer, 2, 2, cfg.n_head, 2, head))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            (ids, past),
            str(path),
            input_names=["input_ids", "past"],
            output_names=["logits", "present"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "past": {2: "batch", 4: "past_seq"},
                "logits": {0: "batch", 1: "seq"},
                "present": {2: "batch", 4: "total_seq"},
            },
            opset_version=OPSET,
            dynamo=False,
        )


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the matmuls (the untied output head included)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def sha256(path: Path) -> str:
    """Hex digest of a file, for the release manifest."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parity(model: PyCoder, onnx_path: Path, vocab: int, steps: int = 3) -> float:
    """Largest |logit difference| between torch and ONNX over a prompt and cached steps."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    cfg = model.config
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=(2, 7))
    past = np.zeros((cfg.n_layer, 2, 2, cfg.n_head, 0, cfg.n_embd // cfg.n_head), np.float32)
    seq = ids
    worst = 0.0
    step = PyCoderStep(model.float().eval())
    for _ in range(steps):
        logits, past = sess.run(None, {"input_ids": ids.astype(np.int64), "past": past})
        with torch.no_grad():
            ref, _ = step(torch.from_numpy(seq), None)
        worst = max(worst, float(np.abs(ref[:, -ids.shape[1] :].numpy() - logits).max()))
        ids = rng.integers(0, vocab, size=(2, 1))
        seq = np.concatenate([seq, ids], axis=1)
    return worst


def release(checkpoint: Path, tokenizer: Path, out: Path, card: str, extra: dict) -> dict:
    """Write model.onnx (int8), tokenizer.json, config.json, manifest.json and README.md."""
    model = from_pretrained(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / "model.fp32.onnx"
    export_onnx(model, fp32)
    vocab = model.config.vocab_size
    fp32_parity = parity(model, fp32, vocab)
    quantize_int8(fp32, out / "model.onnx")
    fp32.unlink()
    shutil.copy(tokenizer, out / "tokenizer.json")
    model.config.save(out / "config.json")
    manifest = {
        "name": extra.get("name", "fillpoint-pycoder"),
        "architecture": "pycoder",
        "parameters": model.num_params(),
        "fp32_parity_max_abs": fp32_parity,
        "files": {f: sha256(out / f) for f in ("model.onnx", "tokenizer.json", "config.json")},
        **{k: v for k, v in extra.items() if k != "name"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (out / "README.md").write_text(card)
    return manifest
