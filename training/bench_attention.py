"""What a cache written in place would save per decoder call, before the graph is reworked.

    python -m fillpoint.training.bench_attention --cached 200 460

The shipped graph appends each call's new keys and values to the cache it was given and
returns the whole cache (a `Concat` per layer and kind: a copy of everything cached), then
attends over it. onnxruntime's `GroupQueryAttention` (com.microsoft) can instead write the
new keys and values into the cache buffer it reads, when the caller binds one buffer as
both its past input and its present output, and it takes an additive attention bias, which
a draft tree's mask needs. This times the attention of the decoder's layers alone, both
ways, over the same cache and new tokens (the projections and the MLP, the same either
way, are left out), and checks the in-place path against a direct computation with a
tree mask first.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

NEW_TOKENS = (1, 8)
OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]


def _value(
    name: str, shape: Sequence[int | str] | None = None, kind: int = TensorProto.FLOAT
) -> onnx.ValueInfoProto:
    """A graph input or output (shape None: left to onnxruntime's inference)."""
    return helper.make_tensor_value_info(name, kind, None if shape is None else list(shape))


def appending_graph(layers: int, heads: int, head_dim: int) -> onnx.ModelProto:
    """The shipped layout: new keys/values appended to a copy of the cache, then attention
    with an additive bias (B, 1, T, P+T); outputs each layer's attention and new cache."""
    new = [_value(n, [1, heads, "T", head_dim]) for n in ("q", "k", "v")]
    inputs, outputs, nodes = [*new, _value("bias", [1, 1, "T", "S"])], [], []
    for i in range(layers):
        inputs += [_value(f"past_{kind}_{i}", [1, heads, "P", head_dim]) for kind in "kv"]
        nodes += [
            helper.make_node("Concat", [f"past_k_{i}", "k"], [f"present_k_{i}"], axis=2),
            helper.make_node("Concat", [f"past_v_{i}", "v"], [f"present_v_{i}"], axis=2),
            helper.make_node("Transpose", [f"present_k_{i}"], [f"kt_{i}"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["q", f"kt_{i}"], [f"scores_{i}"]),
            helper.make_node("Add", [f"scores_{i}", "bias"], [f"biased_{i}"]),
            helper.make_node("Softmax", [f"biased_{i}"], [f"p_{i}"], axis=-1),
            helper.make_node("MatMul", [f"p_{i}", f"present_v_{i}"], [f"out_{i}"]),
        ]
        outputs += [_value(f"{n}_{i}") for n in ("out", "present_k", "present_v")]
    graph = helper.make_graph(nodes, "appending", inputs, outputs)
    return helper.make_model(graph, opset_imports=OPSETS[:1])


def in_place_graph(layers: int, heads: int, head_dim: int) -> onnx.ModelProto:
    """`GroupQueryAttention` per layer over a cache buffer of fixed capacity, which the caller
    binds as both past and present (written in place), with the same additive bias."""
    width = heads * head_dim
    inputs = [_value(n, [1, "T", width]) for n in ("q", "k", "v")]
    inputs += [
        _value("seqlens_k", [1], TensorProto.INT32),
        _value("total_sequence_length", [], TensorProto.INT32),
        _value("bias", [1, 1, "T", "S"]),
    ]
    outputs, nodes = [], []
    for i in range(layers):
        inputs += [_value(f"past_{kind}_{i}", [1, heads, "C", head_dim]) for kind in "kv"]
        shared = ["q", "k", "v", f"past_k_{i}", f"past_v_{i}", "seqlens_k"]
        # no rotary (cos/sin), no position ids: the decoder's positions are learnt embeddings
        args = [*shared, "total_sequence_length", "", "", "", "bias"]
        names = [f"out_{i}", f"present_k_{i}", f"present_v_{i}"]
        nodes.append(
            helper.make_node(
                "GroupQueryAttention",
                args,
                names,
                domain="com.microsoft",
                num_heads=heads,
                kv_num_heads=heads,
            )
        )
        outputs += [_value(n) for n in names]
    graph = helper.make_graph(nodes, "in_place", inputs, outputs)
    return helper.make_model(graph, opset_imports=OPSETS)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # as the server runs the decoder
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def tree_bias(cached: int, parents: Sequence[int]) -> np.ndarray:
    """(1, 1, T, cached + T) additive mask of a draft tree: node i sees the cache, itself
    and its ancestors (`parents[i]` < i, -1 for a root)."""
    n = len(parents)
    sees = np.zeros((n, cached + n), bool)
    sees[:, :cached] = True
    for i, parent in enumerate(parents):
        sees[i, cached + i] = True
        if parent >= 0:
            sees[i, cached:] |= sees[parent, cached:]
    return np.where(sees, 0.0, -np.inf).astype(np.float32)[None, None]


class InPlace:
    """The in-place graph bound to its cache buffers, `cached` positions filled."""

    def __init__(self, layers: int, heads: int, head_dim: int, capacity: int) -> None:
        self.session = _session(in_place_graph(layers, heads, head_dim))
        self.layers = layers
        shape = (1, heads, capacity, head_dim)
        self.cache = [np.zeros(shape, np.float32) for _ in range(2 * layers)]

    def bind(
        self, q: np.ndarray, k: np.ndarray, v: np.ndarray, cached: int, bias: np.ndarray
    ) -> ort.IOBinding:
        """An IO binding of one call over new (1, T, heads * head_dim) inputs."""
        io = self.session.io_binding()
        total = cached + q.shape[1]
        feed = {"q": q, "k": k, "v": v, "bias": bias}
        feed["seqlens_k"] = np.array([total - 1], np.int32)
        feed["total_sequence_length"] = np.array(total, np.int32)
        for name, value in feed.items():
            io.bind_cpu_input(name, np.ascontiguousarray(value))
        for i in range(self.layers):
            for j, kind in enumerate("kv"):
                buf = self.cache[2 * i + j]
                io.bind_cpu_input(f"past_{kind}_{i}", buf)
                io.bind_output(
                    f"present_{kind}_{i}", "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data
                )
            io.bind_output(f"out_{i}", "cpu")
        return io


def check_in_place(heads: int = 2, head_dim: int = 8, cached: int = 5) -> float:
    """The largest difference between the in-place graph's attention under a draft tree's
    bias and a direct computation; raises if the cache was not written in place."""
    rng = np.random.default_rng(0)
    parents = [-1, 0, 0, 2]
    n, width = len(parents), heads * head_dim
    graph = InPlace(1, heads, head_dim, capacity=cached + n + 3)
    for buf in graph.cache:
        buf[:, :, :cached] = rng.standard_normal((1, heads, cached, head_dim))
    q, k, v = (rng.standard_normal((1, n, width)).astype(np.float32) for _ in range(3))
    keys = np.concatenate(
        [graph.cache[0][0, :, :cached], k[0].reshape(n, heads, -1).swapaxes(0, 1)], 1
    )
    values = np.concatenate(
        [graph.cache[1][0, :, :cached], v[0].reshape(n, heads, -1).swapaxes(0, 1)], 1
    )
    bias = tree_bias(cached, parents)
    io = graph.bind(q, k, v, cached, bias)
    graph.session.run_with_iobinding(io)
    got = io.get_outputs()[2].numpy()  # in the order bound: the cache, then the output
    if not np.array_equal(graph.cache[0][0, :, : cached + n], keys):
        raise RuntimeError("GroupQueryAttention did not write the new keys into the buffer")
    query = q[0].reshape(n, heads, head_dim).swapaxes(0, 1)
    scores = query @ keys.swapaxes(1, 2) / np.sqrt(head_dim) + bias[0]
    p = np.exp(scores - scores.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ values
    return float(np.abs(got - want.swapaxes(0, 1).reshape(1, n, width)).max())


def attention_cost(
    layers: int, heads: int, head_dim: int, cached: int, new: int, repeats: int = 200
) -> tuple[float, float]:
    """Mean milliseconds of one call's attention over `cached` cached and `new` new tokens:
    appending to a copy of the cache, and writing it in place."""
    rng = np.random.default_rng(0)
    width = heads * head_dim
    bias = tree_bias(cached, [i - 1 for i in range(new)])  # a chain: causal
    appending = _session(appending_graph(layers, heads, head_dim))
    feed = {n: rng.standard_normal((1, heads, new, head_dim)).astype(np.float32) for n in "qkv"}
    feed["bias"] = bias
    for i in range(layers):
        for kind in "kv":
            past = rng.standard_normal((1, heads, cached, head_dim)).astype(np.float32)
            feed[f"past_{kind}_{i}"] = past
    in_place = InPlace(layers, heads, head_dim, capacity=cached + new)
    flat = {n: rng.standard_normal((1, new, width)).astype(np.float32) for n in "qkv"}
    io = in_place.bind(flat["q"], flat["k"], flat["v"], cached, bias)

    def timed(run: Callable[[], object]) -> float:
        for _ in range(repeats // 10):
            run()
        t0 = time.perf_counter()
        for _ in range(repeats):
            run()
        return (time.perf_counter() - t0) / repeats * 1000

    return (
        timed(lambda: appending.run(None, feed)),
        timed(lambda: in_place.session.run_with_iobinding(io)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fillpoint.training.bench_attention")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--cached", type=int, nargs="+", default=[200, 460])
    p.add_argument("--new", type=int, nargs="+", default=list(NEW_TOKENS))
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args(argv)
    print(f"in-place attention under a draft tree's bias: max |difference| {check_in_place():.2e}")
    print(
        f"{args.layers} layers x {args.heads} heads x {args.head_dim}, attention only, one thread"
    )
    print("| cached | new | appended to a copy | written in place | saved |")
    print("|---|---|---|---|---|")
    for cached in args.cached:
        for new in args.new:
            copy_ms, in_place_ms = attention_cost(
                args.layers, args.heads, args.head_dim, cached, new, args.repeats
            )
            saved = copy_ms - in_place_ms
            print(
                f"| {cached} | {new} | {copy_ms:.3f} ms | {in_place_ms:.3f} ms | {saved:.3f} ms |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
