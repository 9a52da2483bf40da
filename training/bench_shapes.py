"""What a decoder shape would cost per call on this machine, before training it.

    python -m fillpoint.training.bench_shapes 4x8x256 4x6x384 6x6x384

Each shape (layers x heads x width) gets random weights and is exported as a release is
(`export.export_int8`: int8, logits window); then the median time of one call over 1, 16,
64 and 256 new tokens after a cached prompt, the calls the server makes (a keystroke, a
draft, a prompt's new part, a long jump). Weights do not change the time, so this picks a
size for the latency budget without a training run.

With `--release DIR` each shape is also written as a whole release folder, DIR/LxHxW, with
the shipped tokenizer and CodeFill model beside the random decoder: `fillpoint bench
--model DIR/LxHxW` then gives the server's memory with a decoder of that size (its
latencies are not those of a trained model: random weights write other ghost text).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fillpoint.completion.runtime import OnnxDecoder
from fillpoint.models.pycoder import PyCoder, PyCoderConfig

from .export import export_int8
from .tokentypes import N_TYPES

NEW_TOKENS = (1, 16, 64, 256)


def parse_shape(text: str) -> tuple[int, int, int]:
    """ "4x6x384" -> (layers, heads, width)."""
    try:
        layers, heads, width = (int(x) for x in text.lower().split("x"))
    except ValueError:
        msg = f"{text!r}: want LAYERSxHEADSxWIDTH, e.g. 4x6x384"
        raise argparse.ArgumentTypeError(msg) from None
    if min(layers, heads, width) < 1 or width % heads:
        msg = f"{text!r}: sizes must be positive and the width must split into the heads"
        raise argparse.ArgumentTypeError(msg)
    return layers, heads, width


def random_model(shape: tuple[int, int, int], vocab: int, block_size: int = 512) -> PyCoder:
    """A decoder of `shape` (layers, heads, width) with seeded random weights."""
    layers, heads, width = shape
    torch.manual_seed(0)
    shape_kw = {"n_layer": layers, "n_head": heads, "n_embd": width, "block_size": block_size}
    return PyCoder(PyCoderConfig(vocab, N_TYPES, **shape_kw)).eval()


def shape_cost(
    shape: tuple[int, int, int],
    new_tokens: tuple[int, ...] = NEW_TOKENS,
    cached: int = 200,
    repeats: int = 15,
    vocab: int = 8192,
    block_size: int = 512,
    threads: int = 1,  # as the server runs the decoder
) -> tuple[int, dict[int, float]]:
    """The shape's parameter count, and the median milliseconds of one call over n new
    tokens after `cached` cached ones, per n."""
    layers, heads, width = shape
    model = random_model(shape, vocab, block_size)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_int8(model, path)
        lm = OnnxDecoder.for_graph(path, layers, heads, width // heads, threads)
        out = {}
        for n in new_tokens:
            times = []
            for _ in range(repeats):
                _, past = lm.step(rng.integers(0, vocab, (1, cached)), lm.empty_past())
                t = time.perf_counter()
                lm.step(rng.integers(0, vocab, (1, n)), past)
                times.append(time.perf_counter() - t)
            out[n] = 1000 * float(np.median(times))
    return model.num_params(), out


def random_release(shape: tuple[int, int, int], out: Path, model: Path | None = None) -> Path:
    """A release folder at `out` with a random decoder of `shape` and, from the release at
    `model` (the shipped one by default), its tokenizer and CodeFill model."""
    from fillpoint.completion.engine import default_model_path
    from fillpoint.models.pycoder import save_pretrained

    from .export import release

    source = model or default_model_path()
    tokenizer = source / "tokenizer.json"
    vocab = json.loads(tokenizer.read_text())["model"]["vocab"]
    layers, heads, width = shape
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(random_model(shape, len(vocab)), Path(tmp))
        name = f"random-{layers}x{heads}x{width}"
        release(Path(tmp), tokenizer, out, f"# {name}\n\nRandom weights.\n", {"name": name})
    if (source / "codefill").is_dir():
        shutil.copytree(source / "codefill", out / "codefill", dirs_exist_ok=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("shapes", nargs="+", type=parse_shape, help="LAYERSxHEADSxWIDTH")
    p.add_argument("--cached", type=int, default=200, help="tokens in the cache before a call")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument(
        "--threads", type=int, default=1, help="onnxruntime intra-op threads (the server: 1)"
    )
    p.add_argument(
        "--release",
        type=Path,
        metavar="DIR",
        help="also write each shape as a release folder DIR/LxHxW (random decoder, the "
        "shipped tokenizer and CodeFill model) for `fillpoint bench --model`",
    )
    args = p.parse_args(argv)
    print("| shape | parameters | " + " | ".join(f"{n} new" for n in NEW_TOKENS) + " |")
    print("|---" * (len(NEW_TOKENS) + 2) + "|")
    for shape in args.shapes:
        layers, heads, width = shape
        params, cost = shape_cost(
            shape, cached=args.cached, repeats=args.repeats, threads=args.threads
        )
        cells = " | ".join(f"{cost[n]:.2f} ms" for n in NEW_TOKENS)
        row = f"| {layers} x {width} ({heads} heads) | {params / 1e6:.1f}M | {cells} |"
        print(row, flush=True)
        if args.release:
            folder = random_release(shape, args.release / f"{layers}x{heads}x{width}")
            print(f"  release: {folder}", flush=True)


if __name__ == "__main__":
    main()
