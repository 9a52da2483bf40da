"""Random-span infilling: a span of a line is missing and everything after it is in view.

The cursor sits at a random character inside a code line, often inside a word, so the
mid-token modes are what differs. The span runs from the cursor to a random later point of
the same line: its end of line, or a point before a character that does not continue a
word (the engine rightly offers no ghost text in front of a word). The rest of the line
after the span and the code below it are the suffix (fill-in-the-middle); the truth is
the span.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fillpoint.completion.engine import Engine

from .corpus import iter_split
from .eval_engine import inline_predictions, line_scores, p50
from .tokentypes import TYPE_ID, char_types


@dataclass
class InfillSample:
    """The text before the cursor, the missing span, and the text after it."""

    prefix: str
    truth: str
    suffix: str


def code_lines(text: str) -> Iterator[tuple[int, str]]:
    """(offset, text) of lines past the file's start with code only, no strings or comments.

    Lines with string or comment characters are skipped: the engine rightly offers nothing
    inside them, so they would measure the sampler, not the model.
    """
    kinds = char_types(text)
    skip = {TYPE_ID["STRING"], TYPE_ID["COMMENT"]}
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        in_code = not any(int(k) in skip for k in kinds[pos : pos + len(body)])
        if pos > 200 and len(body.strip()) > 8 and in_code:
            yield pos, body
        pos += len(line)


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def span_in(body: str, rng: random.Random) -> tuple[int, int] | None:
    """A random (start, end) inside a line's code, or None if it has no room for one."""
    indent = len(body) - len(body.lstrip())
    if len(body) - indent < 2:
        return None
    start = rng.randint(indent + 1, len(body) - 1)  # at least one character of code typed
    ends = [e for e in range(start + 1, len(body) + 1) if e == len(body) or not _word(body[e])]
    ends = [e for e in ends if body[start:e].strip()]
    return (start, rng.choice(ends)) if ends else None


def sample_spans(corpus: Path, n: int, seed: int = 0, split: str = "test") -> list[InfillSample]:
    """One random span in a random code line of each held-out file, until there are `n`."""
    rng = random.Random(f"infill-{seed}")  # its own stream: other samples stay as they were
    files = [r["text"] for r in iter_split(corpus, split)]
    rng.shuffle(files)
    out: list[InfillSample] = []
    for text in files:
        lines = list(code_lines(text))
        if not lines:
            continue
        pos, body = rng.choice(lines)
        span = span_in(body, rng)
        if span is None:
            continue
        a, b = pos + span[0], pos + span[1]
        out.append(InfillSample(text[:a], text[a:b], text[b:]))
        if len(out) >= n:
            break
    return out


def infill_metrics(engines: dict[str, Engine], samples: list[InfillSample]) -> dict[str, dict]:
    """Per mode: line scores overall and split by where the span ends, and p50 latency."""
    docs = [(s.prefix, s.suffix) for s in samples]
    truths = [s.truth for s in samples]
    to_eol = [not s.suffix.split("\n", 1)[0].strip() for s in samples]
    out = {}
    for mode, engine in engines.items():
        preds, times = inline_predictions(engine, docs)
        row = line_scores(preds, truths) | {"p50_ms": p50(times)}
        for key, keep in (("to_line_end", True), ("inside_line", False)):
            pairs = [(p, t) for p, t, e in zip(preds, truths, to_eol, strict=True) if e == keep]
            row[key] = line_scores([p for p, _ in pairs], [t for _, t in pairs])
        out[mode] = row
    return out
