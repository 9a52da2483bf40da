"""Export a CodeFill checkpoint to ONNX (both decoders, KV cache, int8) and a release folder.

The graph is CodeFillSplitStep: (names, types, past_key_0, past_value_0, ...) ->
(name_logits, type_logits, present_key_0, ...), the logits of the last position only; the
server reads the name logits (next-name candidates) and, when it completes a statement, the
type logits (the type of the name it just chose, for the next step's input).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from fillpoint.completion.runtime import run_cached
from fillpoint.models.codefill import CodeFill, CodeFillSplitStep, from_pretrained

from .export import OPSET, add_logits_window, cache_example, quantize_int8, sha256


def head_names(model: CodeFill) -> list[str]:
    """The graph's logits outputs; a names-only model has no type logits."""
    return ["name_logits"] if model.config.names_only else ["name_logits", "type_logits"]


def _layers(model: CodeFill) -> int:
    """Cache layers: the name decoder's, then the type decoder's."""
    return (1 if model.config.names_only else 2) * model.config.n_layer


def export_onnx(model: CodeFill, path: Path) -> None:
    """Write the step graph with dynamic batch, sequence and cache lengths (fp32), the cache
    as one tensor per layer and kind (`CodeFillSplitStep`)."""
    model = model.float().eval()
    cfg = model.config
    ids = torch.zeros((2, 3), dtype=torch.long)
    past, pasts, presents, cache_axes = cache_example(
        _layers(model), cfg.n_head, cfg.n_embd // cfg.n_head
    )
    axes = {name: {0: "batch", 1: "seq"} for name in ("names", "types")}
    axes |= {name: {0: "batch"} for name in head_names(model)}  # (B, 1, V): the last position
    axes |= cache_axes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            CodeFillSplitStep(model, last_only=True),
            (ids, ids.clone(), *past),
            str(path),
            input_names=["names", "types", *pasts],
            output_names=[*head_names(model), *presents],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def parity(model: CodeFill, onnx_path: Path, steps: int = 3) -> float:
    """Largest |logit difference| between torch and ONNX over a prompt and cached steps."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}  # an unused types input is dropped
    cfg = model.config
    rng = np.random.default_rng(0)
    names = rng.integers(0, cfg.n_names, size=(2, 7))
    types = rng.integers(0, cfg.n_types, size=(2, 7))
    past = np.zeros((_layers(model), 2, 2, cfg.n_head, 0, cfg.n_embd // cfg.n_head), np.float32)
    seq_n, seq_t = names, types
    model = model.float().eval()
    worst = 0.0
    heads = dict.fromkeys(head_names(model))
    for _ in range(steps):
        feed = {"names": names, "types": types, "last_n": np.array([1])}
        feed = {k: v for k, v in feed.items() if k in wanted}
        outs, past = run_cached(sess, feed, past, names.shape[1], heads)
        with torch.no_grad():
            ref = model.step(torch.from_numpy(seq_n), torch.from_numpy(seq_t))
        for got, want in zip(outs, ref[:-1], strict=False):
            diff = np.abs(want[:, -1:].numpy() - got).max()
            worst = max(worst, float(diff))
        names = rng.integers(0, cfg.n_names, size=(2, 1))
        types = rng.integers(0, cfg.n_types, size=(2, 1))
        seq_n = np.concatenate([seq_n, names], axis=1)
        seq_t = np.concatenate([seq_t, types], axis=1)
    return worst


def release(checkpoint: Path, vocab: Path, out: Path, extra: dict | None = None) -> dict:
    """Write model.onnx (int8), vocab.json, config.json and manifest.json into `out`."""
    model = from_pretrained(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / "model.fp32.onnx"
    export_onnx(model, fp32)
    fp32_parity = parity(model, fp32)
    quantize_int8(fp32, out / "model.onnx")
    heads = tuple(head_names(model))
    onnx.save(add_logits_window(onnx.load(str(out / "model.onnx")), heads), str(out / "model.onnx"))
    int8_parity = parity(model, out / "model.onnx")
    fp32.unlink()
    shutil.copy(vocab, out / "vocab.json")
    model.config.save(out / "config.json")
    files = ("model.onnx", "vocab.json", "config.json")
    manifest = {
        "name": "fillpoint-codefill",
        "architecture": "codefill",
        "parameters": model.num_params(),
        "fp32_parity_max_abs": fp32_parity,
        "int8_parity_max_abs": int8_parity,
        "files": {f: sha256(out / f) for f in files},
        **(extra or {}),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
