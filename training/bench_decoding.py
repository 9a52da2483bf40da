"""Line decoding speed: plain greedy decoding against the drafters of `recycling.DRAFTERS`
(Token Recycling's table tree, and chains drafted from the document), in-process, and the
cost of the beam that ghost text decodes with by default.

Each held-out file gives line prompts in file order (a random cut inside a code line, the
rest of the file below as the fill-in-the-middle suffix), decoded the way inline completion
decodes them; some of its lines are also typed through a character at a time, with ghost
text wherever the line shown before does not predict the keystroke. Every decoder starts
from the same cached prompt, so the time is the decoding itself, and the prompt is decoded
once untimed first (the first decoding after a prefill touches fresh memory: timed, it made
plain greedy decoding, which went first, look slower); a drafter keeps its table and its last
line from prompt to prompt, as the engine keeps them across requests. CPU time of this process
(onnxruntime's threads included) is what is compared.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fillpoint.completion import decoding
from fillpoint.completion.recycling import DRAFTERS, Recycler
from fillpoint.completion.runtime import OnnxDecoder
from fillpoint.completion.types import EngineSettings


def _sampled_lines(
    files: list[tuple[str, str]], per_file: int, rng: random.Random
) -> Iterator[tuple[str, int, str, int]]:
    """Code lines from the last three quarters of each file, in file order: the file's text,
    where the line starts, the line, and where the next line starts."""
    for _, text in files:
        lines = text.splitlines(keepends=True)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        code = [i for i in range(len(lines) // 4, len(lines)) if lines[i].strip()]
        for i in sorted(rng.sample(code, min(per_file, len(code)))):
            yield text, starts[i], lines[i], starts[i + 1]


def _prompt(lm: OnnxDecoder, text: str, cut: int, below: int) -> decoding.Prompt:
    """The healed prompt at `cut`, the file from `below` on as the fill-in-the-middle suffix."""
    return decoding.fim_prompt(lm, decoding.heal(lm, text[:cut], "healing"), text[below:])


def line_prompts(
    lm: OnnxDecoder, files: list[tuple[str, str]], per_file: int, seed: int
) -> list[decoding.Prompt]:
    """Healed FIM prompts at random points inside code lines, in file order."""
    rng = random.Random(seed)
    out = []
    for text, start, line, below in _sampled_lines(files, per_file, rng):
        indent = len(line) - len(line.lstrip())
        end = max(indent + 1, len(line.rstrip()))
        out.append(_prompt(lm, text, start + rng.randrange(indent, end), below))
    return out


def typed_lines(
    lm: OnnxDecoder, files: list[tuple[str, str]], per_file: int, seed: int
) -> list[list[tuple[decoding.Prompt, str]]]:
    """Code lines typed one character at a time, in file order: for each line, the prompt at
    every character (healed, the rest of the file below as the suffix) and that character."""
    out = []
    for text, start, line, below in _sampled_lines(files, per_file, random.Random(seed)):
        body = line.rstrip()
        indent = len(body) - len(body.lstrip())
        out.append(
            [(_prompt(lm, text, start + c, below), body[c]) for c in range(indent, len(body))]
        )
    return out


class Race:
    """Plain greedy decoding against each drafter of `recycling.DRAFTERS` on the same prompts,
    in CPU time; each drafter keeps its table and its last line from prompt to prompt."""

    def __init__(self, lm: OnnxDecoder, max_tokens: int = 48) -> None:
        self.lm, self.vocab, self.max_tokens = lm, decoding.Vocab(lm), max_tokens
        self.drafters = {kind: Recycler(lm, **cfg) for kind, cfg in DRAFTERS.items()}
        self.width = EngineSettings().line_beam  # the ghost text's beam, for its cost
        self.cpu = dict.fromkeys(["greedy", *self.drafters, "beam"], 0.0)
        # the prompt's prefill (idle work in the server): plain, and with the output head on
        # every token for the tables that learn from it
        self.prefill = {"tokens": 0, "plain_cpu_s": 0.0, "watched_cpu_s": 0.0}
        self.same = dict.fromkeys([*self.drafters, "beam"], 0)
        self.lines = 0

    def decode(self, prompt: decoding.Prompt) -> str:
        """Greedy decoding's line at `prompt`; each drafter decodes it too, from the same
        cached prompt."""
        lm, vocab, n = self.lm, self.vocab, self.max_tokens
        window = decoding._window(lm, prompt.ids, n)
        t = time.process_time()
        decoding.PrefixCache(lm).prefill(window)
        self.prefill["plain_cpu_s"] += time.process_time() - t
        cache = decoding.PrefixCache(lm)
        for drafter in self.drafters.values():
            if drafter.table is not None:
                cache.watch(drafter.table.update)
        t = time.process_time()
        cache.prefill(window)
        self.prefill["watched_cpu_s"] += time.process_time() - t
        self.prefill["tokens"] += len(window)
        # untimed: the first decoding after a prefill pays for touching fresh memory
        decoding.greedy_line(lm, vocab, prompt, n, None, cache)
        t = time.process_time()
        want = decoding.greedy_line(lm, vocab, prompt, n, None, cache)
        self.cpu["greedy"] += time.process_time() - t
        for kind, drafter in self.drafters.items():
            t = time.process_time()
            got = drafter.greedy_line(vocab, prompt, n, None, cache)
            self.cpu[kind] += time.process_time() - t
            self.same[kind] += got[0] == want[0]
        t = time.process_time()
        got = decoding.beam_line(lm, vocab, prompt, self.width, n, None, cache)
        self.cpu["beam"] += time.process_time() - t
        self.same["beam"] += got[0] == want[0]
        self.lines += 1
        return want[0]

    def result(self) -> dict[str, Any]:
        """Tokens/s, speed-up over greedy, tokens per model call and lines the same."""
        cpu = self.cpu
        tokens = next(iter(self.drafters.values())).tokens  # all decode the same lines
        return {
            "lines": self.lines,
            "tokens": tokens,
            "drafters": {
                kind: {
                    **DRAFTERS[kind],
                    "identical": self.same[kind],
                    "model_calls": d.calls,
                    "tokens_per_call": d.tokens / max(d.calls, 1),
                    "speedup": cpu["greedy"] / cpu[kind] if cpu[kind] else None,
                }
                for kind, d in self.drafters.items()
            },
            "beam": {
                "width": self.width,
                "identical": self.same["beam"],
                "speedup": cpu["greedy"] / cpu["beam"] if cpu["beam"] else None,
            },
            "cpu_s": cpu,
            "prefill": self.prefill,
            "tokens_per_s": {k: tokens / v if v else None for k, v in cpu.items()},
        }


TYPED_SHARE = 4  # one line in this many of `compare`'s is also typed through


def compare(
    model: Path, files: list[tuple[str, str]], per_file: int, seed: int, max_tokens: int = 48
) -> dict[str, Any]:
    """Two workloads. Lines: a prompt at a random point of each line, decoded greedily and
    with each drafter. Typed: lines typed a character at a time, decoded wherever the last
    line shown does not go on with the typed character (where it does, the engine shows the
    rest of it without a model call: `TypedThrough`); the result of each is `Race.result`,
    the typed one under "typed"."""
    lm = OnnxDecoder(model)
    race = Race(lm, max_tokens)
    for prompt in line_prompts(lm, files, per_file, seed):
        race.decode(prompt)
    typed = Race(lm, max_tokens)
    for steps in typed_lines(lm, files, max(1, per_file // TYPED_SHARE), seed):
        shown: str | None = None
        for prompt, char in steps:
            if shown is None:
                shown = typed.decode(prompt)
            shown = shown[1:] if shown[:1] == char else None
    return {**race.result(), "typed": typed.result()}


NAMES = {
    "table": "Token Recycling (the table's draft tree)",
    "document": "drafts from the document",
}


def _table(result: dict[str, Any]) -> list[str]:
    tps, lines = result["tokens_per_s"], result["lines"]
    rows = [
        "| decoder | tokens/s | speed-up | tokens per call | lines identical to greedy |",
        "|---|---|---|---|---|",
        f"| plain greedy | {tps['greedy']:.0f} | 1.00x | 1.00 | – |",
    ]
    for kind, d in result["drafters"].items():
        rows.append(
            f"| {NAMES[kind]} | {tps[kind]:.0f} | {d['speedup']:.2f}x | "
            f"{d['tokens_per_call']:.2f} | {d['identical']}/{lines} |"
        )
    if (beam := result.get("beam")) and beam["speedup"]:
        rows.append(
            f"| beam of {beam['width']} (the ghost text's decoder) | – | {beam['speedup']:.2f}x "
            f"| – | {beam['identical']}/{lines} |"
        )
    return rows


def _prefill_cost(prefill: dict[str, float]) -> str:
    """What the table's lessons cost the prompt's prefill (idle work in the server)."""
    per = 1000 / max(prefill["tokens"], 1)
    return (
        f"the output head on every prompt token: {prefill['watched_cpu_s'] * per:.3f} ms of "
        f"idle work per prompt token instead of {prefill['plain_cpu_s'] * per:.3f}"
    )


def to_markdown(result: dict[str, Any]) -> list[str]:
    """The report's section on line decoding."""
    drafters, typed = result["drafters"], result.get("typed")
    lines = [
        "## Line decoding: plain greedy against drafts verified in one call",
        "",
        f"{result['lines']} line prompts from the same held-out files ({result['tokens']} "
        f"tokens), each at a random point of a line, decoded in-process from the cached "
        "prompt, after one untimed decoding of it; CPU time. Token Recycling drafts a "
        f"{drafters['table']['nodes']}-node tree "
        "from its table of the model's own next tokens, which also learns from every prompt "
        f"token the prompt's prefill runs ({_prefill_cost(result['prefill'])}); drafts from "
        "the document are the up "
        f"to {drafters['document']['chain']} tokens that followed the line's last tokens where "
        "they occurred before (in the line decoded last, the prompt or the line so far). "
        "Tokens per call count the prompt's call. The beam is what ghost text decodes with "
        "by default (the drafts speed up greedy decoding only): its row gives its cost "
        "against greedy decoding, and how often it chose the same line.",
        "",
        *_table(result),
        "",
    ]
    if typed:
        lines += [
            "Lines as they are typed: ghost text at each keystroke of the line that the line "
            "shown before does not predict (where it does, it is shown without a model call); "
            f"{typed['lines']} decoded lines ({typed['tokens']} tokens).",
            "",
            *_table(typed),
            "",
        ]
    return lines
