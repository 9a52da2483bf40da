"""Export a trained PyCoder checkpoint to ONNX (KV cache, int8) and assemble a release folder."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from fillpoint.completion.runtime import cache_names, causal_inputs
from fillpoint.models.pycoder import PyCoder, PyCoderSplitStep, PyCoderStep, from_pretrained

OPSET = 17


def cache_example(
    layers: int, n_head: int, head_dim: int
) -> tuple[list[torch.Tensor], list[str], list[str], dict[str, dict[int, str]]]:
    """What a per-layer cache graph's export needs: example cache tensors (batch 2, two
    cached tokens), the input and output names, and their dynamic axes."""
    past = [torch.zeros((2, n_head, 2, head_dim)) for _ in range(2 * layers)]
    pasts, presents = cache_names(layers, "past"), cache_names(layers, "present")
    axes = {name: {0: "batch", 2: "past_seq"} for name in pasts}
    axes |= {name: {0: "batch", 2: "total_seq"} for name in presents}
    return past, pasts, presents, axes


def export_onnx(model: PyCoder, path: Path) -> None:
    """Write the step graph (ids, attn_mask, position_ids, past_key_0, past_value_0, ...)
    -> (logits, present_key_0, present_value_0, ...), each cache tensor (B, H, P, D).

    Batch, new and cached lengths are dynamic; the mask and positions are inputs so that a
    caller can verify a tree of draft tokens in one call.
    """
    model = model.float().eval()
    model.untie()
    step = PyCoderSplitStep(model)
    cfg = model.config
    head = cfg.n_embd // cfg.n_head
    ids = torch.zeros((2, 3), dtype=torch.long)
    past, pasts, presents, cache_axes = cache_example(cfg.n_layer, cfg.n_head, head)
    mask, pos = (torch.from_numpy(a) for a in causal_inputs(2, 2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            (ids, mask, pos, *past),
            str(path),
            input_names=["input_ids", "attn_mask", "position_ids", *pasts],
            output_names=["logits", *presents],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attn_mask": {0: "batch", 1: "seq", 2: "total_seq"},
                "position_ids": {0: "batch", 1: "seq"},
                "logits": {0: "batch", 1: "seq"},
                **cache_axes,
            },
            opset_version=OPSET,
            dynamo=False,
        )


def _row_quantized_matmul(node: onnx.NodeProto, w: np.ndarray) -> tuple[list, list]:
    """Nodes and initializers that replace `x @ w` by an int8 product with per-row scales.

    Weights: symmetric int8, one scale per output column. Activations: symmetric, one scale
    per row (token), stored as uint8 around a zero point of 128 (the fast u8s8 kernels).
    """
    from onnx import TensorProto, helper, numpy_helper

    p, x = node.name or node.output[0], node.input[0]
    w_scale = np.abs(w).max(axis=0) / 127.0
    w_scale[w_scale == 0] = 1.0
    w_q = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
    inits = [
        numpy_helper.from_array(w_q, f"{p}_wq"),
        numpy_helper.from_array(w_scale.astype(np.float32), f"{p}_ws"),
        numpy_helper.from_array(np.array(1 / 127.0, np.float32), f"{p}_inv127"),
        numpy_helper.from_array(np.array(1e-12, np.float32), f"{p}_eps"),
        numpy_helper.from_array(np.array(128.0, np.float32), f"{p}_128"),
        numpy_helper.from_array(np.array(128, np.uint8), f"{p}_zp"),
    ]

    def op(kind: str, ins: list[str], out: str, **attrs: object) -> onnx.NodeProto:
        return helper.make_node(kind, ins, [out], name=f"{out}_node", **attrs)

    nodes = [
        op("Abs", [x], f"{p}_abs"),
        op("ReduceMax", [f"{p}_abs"], f"{p}_max", axes=[-1], keepdims=1),
        op("Mul", [f"{p}_max", f"{p}_inv127"], f"{p}_s0"),
        op("Max", [f"{p}_s0", f"{p}_eps"], f"{p}_s"),  # (B, T, 1): one scale per row
        op("Div", [x, f"{p}_s"], f"{p}_xs"),
        op("Round", [f"{p}_xs"], f"{p}_xr"),
        op("Add", [f"{p}_xr", f"{p}_128"], f"{p}_xu"),
        op("Cast", [f"{p}_xu"], f"{p}_xq", to=TensorProto.UINT8),
        op("MatMulInteger", [f"{p}_xq", f"{p}_wq", f"{p}_zp"], f"{p}_y32"),
        op("Cast", [f"{p}_y32"], f"{p}_yf", to=TensorProto.FLOAT),
        # the column scales first: onnxruntime fuses Cast -> Mul into its int8 matmul, and
        # that fusion handles a per-column scale but not a per-row one
        op("Mul", [f"{p}_yf", f"{p}_ws"], f"{p}_yw"),
        op("Mul", [f"{p}_yw", f"{p}_s"], node.output[0]),
    ]
    return nodes, inits


def quantize_int8(src: Path, dst: Path) -> None:
    """int8 weights for every matmul (the untied output head included) and the embeddings.

    Matmul activations are quantized per row, so a token's logits do not depend on the other
    tokens of the same call: a draft tree verified in one call decodes exactly what one call
    per token would. (Per-tensor dynamic quantization shares one scale across the batch.)
    """
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    gathered = dst.with_suffix(".gather.onnx")
    quantize_dynamic(
        str(src), str(gathered), weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"]
    )
    model = onnx.load(str(gathered))
    gathered.unlink()
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        w = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2:
            nodes.append(node)
            continue
        new_nodes, inits = _row_quantized_matmul(node, numpy_helper.to_array(w).astype(np.float32))
        graph.initializer.remove(w)
        graph.initializer.extend(inits)
        nodes += new_nodes
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(dst))


LAST_N = "last_n"  # optional graph input: logits for the last n new tokens only


def add_logits_window(
    model: onnx.ModelProto, outputs: tuple[str, ...] = ("logits",)
) -> onnx.ModelProto:
    """Give the graph an input `last_n` (int64, shape [1]): the output heads (of `outputs`)
    run on the last n new tokens only (n larger than the call: all of them).

    A prompt's prefill needs the logits after its last token only; a head over the whole
    vocabulary for every token of a long prompt is work and memory spent on nothing. Works
    on fp32 graphs and on the int8 graphs of `quantize_int8`.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    if any(i.name == LAST_N for i in graph.input):
        return model
    graph.input.append(helper.make_tensor_value_info(LAST_N, TensorProto.INT64, [1]))
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([2**62], np.int64), f"{LAST_N}_end"),
            numpy_helper.from_array(np.array([1], np.int64), f"{LAST_N}_axis"),
        ]
    )
    nodes = [helper.make_node("Neg", [LAST_N], [f"{LAST_N}_start"], name=f"{LAST_N}_neg")]
    nodes += list(graph.node)
    for output in outputs:
        nodes = _slice_head_input(nodes, output)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _slice_head_input(nodes: list[onnx.NodeProto], output: str) -> list[onnx.NodeProto]:
    """`nodes` with the hidden state that feeds the head of `output` cut to its last n rows."""
    from onnx import helper

    head = next(n for n in nodes if output in n.output)
    if head.op_type == "MatMul":  # fp32: the head's input is the hidden state
        hidden, chain = head.input[0], [head]
    elif head.op_type == "Mul" and head.input[1].endswith("_s"):
        # int8: `_row_quantized_matmul`'s nodes, named after its prefix; y * s at the end
        prefix = head.input[1].removesuffix("_s")
        chain = [n for n in nodes if n.name.startswith(f"{prefix}_") or n is head]
        divs = [n for n in chain if n.op_type == "Div"]
        if not divs:
            raise ValueError(f"{output!r} is not the output of a head")
        hidden = divs[0].input[0]
    else:
        raise ValueError(f"{output!r} is not the output of a head")
    users = [n for n in nodes if hidden in n.input]
    if not users or any(all(n is not c for c in chain) for n in users):
        raise ValueError(f"the hidden state before {output!r} feeds more than its head")
    kept = f"{hidden}_last_n"
    for node in users:
        node.input[:] = [kept if name == hidden else name for name in node.input]
    cut = helper.make_node(
        "Slice",
        [hidden, f"{LAST_N}_start", f"{LAST_N}_end", f"{LAST_N}_axis"],
        [kept],
        name=f"{kept}_slice",
    )
    first = min(i for i, n in enumerate(nodes) if any(n is u for u in users))
    return nodes[:first] + [cut] + nodes[first:]


def sha256(path: Path) -> str:
    """Hex digest of a file, for the release manifest."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parity(model: PyCoder, onnx_path: Path, vocab: int, steps: int = 3) -> float:
    """Largest |logit difference| between torch and ONNX over a prompt and cached steps."""
    from fillpoint.completion.runtime import OnnxDecoder

    cfg = model.config
    lm = OnnxDecoder.for_graph(onnx_path, cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=(2, 7))
    past = lm.empty_past(2)
    seq = ids
    worst = 0.0
    step = PyCoderStep(model.float().eval())
    for _ in range(steps):
        logits, past = lm.run(ids, past)
        with torch.no_grad():
            ref, _ = step(torch.from_numpy(seq), None)
        worst = max(worst, float(np.abs(ref[:, -ids.shape[1] :].numpy() - logits).max()))
        ids = rng.integers(0, vocab, size=(2, 1))
        seq = np.concatenate([seq, ids], axis=1)
    return worst


def export_int8(model: PyCoder, dst: Path) -> float:
    """The graph the server runs (int8, logits window) at `dst`; returns the fp32 graph's
    parity with torch (the largest |logit difference|)."""
    fp32 = dst.with_suffix(".fp32.onnx")
    export_onnx(model, fp32)
    fp32_parity = parity(model, fp32, model.config.vocab_size)
    quantize_int8(fp32, dst)
    onnx.save(add_logits_window(onnx.load(str(dst))), str(dst))
    fp32.unlink()
    return fp32_parity


def release(checkpoint: Path, tokenizer: Path, out: Path, card: str, extra: dict) -> dict:
    """Write model.onnx (int8), tokenizer.json, config.json, manifest.json and README.md."""
    model = from_pretrained(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    fp32_parity = export_int8(model, out / "model.onnx")
    if not (out / "tokenizer.json").exists() or not tokenizer.samefile(out / "tokenizer.json"):
        shutil.copy(tokenizer, out / "tokenizer.json")  # (releasing again in place: it is)
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
