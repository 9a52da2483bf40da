"""Line decoding speed: plain greedy decoding against Token Recycling, in-process.

Each held-out file gives line prompts in file order (a random cut inside a code line, the
rest of the file below as the fill-in-the-middle suffix), decoded the way inline completion
decodes them. Both decoders start from the same cached prompt, so the time is the decoding
itself; the recycler keeps its table from line to line, as the engine keeps it across
requests. CPU time of this process (onnxruntime's threads included) is what is compared.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from fillpoint.completion import decoding
from fillpoint.completion.recycling import Recycler
from fillpoint.completion.runtime import OnnxDecoder


def line_prompts(
    lm: OnnxDecoder, files: list[tuple[str, str]], per_file: int, seed: int
) -> list[decoding.Prompt]:
    """Healed FIM prompts at random points inside code lines, in file order."""
    rng = random.Random(seed)
    out = []
    for _, text in files:
        lines = text.splitlines(keepends=True)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        code = [i for i in range(len(lines) // 4, len(lines)) if lines[i].strip()]
        for i in sorted(rng.sample(code, min(per_file, len(code)))):
            indent = len(lines[i]) - len(lines[i].lstrip())
            end = max(indent + 1, len(lines[i].rstrip()))
            cut = starts[i] + rng.randrange(indent, end)
            prompt = decoding.heal(lm, text[:cut], "healing")
            out.append(decoding.fim_prompt(lm, prompt, text[starts[i + 1] :]))
    return out


def compare(
    model: Path, files: list[tuple[str, str]], per_file: int, seed: int, max_tokens: int = 48
) -> dict[str, Any]:
    """Decode every prompt both ways; tokens/s, speed-up and how many lines are the same."""
    lm = OnnxDecoder(model)
    vocab = decoding.Vocab(lm)
    recycler = Recycler(lm)
    prompts = line_prompts(lm, files, per_file, seed)
    cpu = {"greedy": 0.0, "recycling": 0.0}
    same = tokens = 0
    for prompt in prompts:
        cache = decoding.PrefixCache(lm)
        cache.prefill(decoding._window(lm, prompt.ids, max_tokens))
        t = time.process_time()
        want = decoding.greedy_line(lm, vocab, prompt, max_tokens, None, cache)
        cpu["greedy"] += time.process_time() - t
        before = recycler.tokens
        t = time.process_time()
        got = recycler.greedy_line(vocab, prompt, max_tokens, None, cache)
        cpu["recycling"] += time.process_time() - t
        tokens += recycler.tokens - before
        same += got[0] == want[0]
    return {
        "lines": len(prompts),
        "tokens": tokens,
        "identical": same,
        "tree_nodes": recycler.shape.size,
        "model_calls_recycling": recycler.calls,
        "tokens_per_call": recycler.tokens / max(recycler.calls, 1),
        "cpu_s": cpu,
        "tokens_per_s": {k: tokens / v if v else None for k, v in cpu.items()},
        "speedup": cpu["greedy"] / cpu["recycling"] if cpu["recycling"] else None,
    }


def to_markdown(result: dict[str, Any]) -> list[str]:
    """The report's section on line decoding."""
    tps = result["tokens_per_s"]
    return [
        "## Line decoding: plain greedy against Token Recycling",
        "",
        f"{result['lines']} line prompts from the same held-out files ({result['tokens']} "
        f"tokens), decoded in-process from the cached prompt; CPU time. Token Recycling: a "
        f"{result['tree_nodes']}-node draft tree, "
        f"{result['tokens_per_call']:.2f} tokens per model call (prefill included).",
        "",
        "| decoder | tokens/s | speed-up | lines identical to greedy |",
        "|---|---|---|---|",
        f"| plain greedy | {tps['greedy']:.0f} | 1.00x | – |",
        f"| Token Recycling | {tps['recycling']:.0f} | {result['speedup']:.2f}x | "
        f"{result['identical']}/{result['lines']} |",
        "",
    ]
