"""Line decoding speed: plain greedy decoding against the drafters of `recycling.DRAFTERS`
(Token Recycling's table tree, and chains drafted from the document), in-process.

Each held-out file gives line prompts in file order (a random cut inside a code line, the
rest of the file below as the fill-in-the-middle suffix), decoded the way inline completion
decodes them. Every decoder starts from the same cached prompt, so the time is the decoding
itself; a drafter keeps its table from line to line, as the engine keeps it across
requests. CPU time of this process (onnxruntime's threads included) is what is compared.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from fillpoint.completion import decoding
from fillpoint.completion.recycling import DRAFTERS, Recycler
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
    """Decode every prompt greedily and with each drafter: tokens/s, speed-up over greedy,
    tokens per model call and how many lines are the same."""
    lm = OnnxDecoder(model)
    vocab = decoding.Vocab(lm)
    drafters = {kind: Recycler(lm, **cfg) for kind, cfg in DRAFTERS.items()}
    prompts = line_prompts(lm, files, per_file, seed)
    cpu = dict.fromkeys(["greedy", *drafters], 0.0)
    same = dict.fromkeys(drafters, 0)
    for prompt in prompts:
        cache = decoding.PrefixCache(lm)
        cache.prefill(decoding._window(lm, prompt.ids, max_tokens))
        t = time.process_time()
        want = decoding.greedy_line(lm, vocab, prompt, max_tokens, None, cache)
        cpu["greedy"] += time.process_time() - t
        for kind, drafter in drafters.items():
            t = time.process_time()
            got = drafter.greedy_line(vocab, prompt, max_tokens, None, cache)
            cpu[kind] += time.process_time() - t
            same[kind] += got[0] == want[0]
    tokens = next(iter(drafters.values())).tokens  # every drafter decodes the same lines
    return {
        "lines": len(prompts),
        "tokens": tokens,
        "drafters": {
            kind: {
                **DRAFTERS[kind],
                "identical": same[kind],
                "model_calls": d.calls,
                "tokens_per_call": d.tokens / max(d.calls, 1),
                "speedup": cpu["greedy"] / cpu[kind] if cpu[kind] else None,
            }
            for kind, d in drafters.items()
        },
        "cpu_s": cpu,
        "tokens_per_s": {k: tokens / v if v else None for k, v in cpu.items()},
    }


NAMES = {
    "table": "Token Recycling (the table's draft tree)",
    "document": "drafts from the document",
}


def to_markdown(result: dict[str, Any]) -> list[str]:
    """The report's section on line decoding."""
    tps, drafters = result["tokens_per_s"], result["drafters"]
    table = drafters["table"]
    lines = [
        "## Line decoding: plain greedy against drafts verified in one call",
        "",
        f"{result['lines']} line prompts from the same held-out files ({result['tokens']} "
        f"tokens), decoded in-process from the cached prompt; CPU time. Token Recycling "
        f"drafts a {table['nodes']}-node tree from its table of the model's own next tokens; "
        f"drafts from the document are the up to {drafters['document']['chain']} tokens that "
        "followed the line's last tokens where they occurred before. Tokens per call count "
        "the prompt's call.",
        "",
        "| decoder | tokens/s | speed-up | tokens per call | lines identical to greedy |",
        "|---|---|---|---|---|",
        f"| plain greedy | {tps['greedy']:.0f} | 1.00x | 1.00 | – |",
    ]
    for kind, d in drafters.items():
        lines.append(
            f"| {NAMES[kind]} | {tps[kind]:.0f} | {d['speedup']:.2f}x | "
            f"{d['tokens_per_call']:.2f} | {d['identical']}/{result['lines']} |"
        )
    return [*lines, ""]
