"""Token-level accuracy (CodeXGLUE rules) of a released decoder, teacher-forced on held-out files.

A lexical token counts as right iff every BPE piece of it is the model's argmax given all the
text before it; structural tokens (newline, indent, dedent, end of text) are not counted.
"""

from __future__ import annotations

import io
import random
import token
import tokenize
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fillpoint.completion.runtime import OnnxDecoder

from .corpus import iter_split

MAX_CHARS = 20_000  # keeps the run short; long files would dominate the count
NOT_COUNTED = {token.NEWLINE, token.NL, token.INDENT, token.DEDENT, token.ENDMARKER}


def lexical_spans(text: str) -> list[tuple[int, int, str]]:
    """(start char, end char, kind) of the counted lexical tokens of a file."""
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in NOT_COUNTED or not tok.string:
                continue
            (r0, c0), (r1, c1) = tok.start, tok.end
            kind = "identifier" if tok.type == token.NAME else token.tok_name[tok.type].lower()
            out.append((starts[r0 - 1] + c0, starts[r1 - 1] + c1, kind))
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def file_hits(lm: OnnxDecoder, text: str) -> tuple[np.ndarray, list[int]]:
    """Per piece: was it the argmax; and the lexical token index of each piece (-1: none)."""
    enc = lm.tokenizer.encode(text, add_special_tokens=False)
    ids = [lm.eot_token, *enc.ids]
    window = lm.block_size
    hits = np.zeros(len(enc.ids), bool)
    # Non-overlapping windows that each start with the piece before them: every piece is
    # predicted once, with at least a few hundred pieces of context beyond the first window.
    for start in range(0, len(enc.ids), window - 1):
        chunk = ids[start : start + window]
        logits, _ = lm.run(np.asarray([chunk], np.int64), lm.empty_past(1))
        pred = logits[0, :-1].argmax(-1)
        hits[start : start + len(chunk) - 1] = pred == np.asarray(chunk[1:])
    spans = lexical_spans(text)
    owner = [-1] * len(enc.ids)
    j = 0
    for i, (s, e) in enumerate(enc.offsets):
        if not text[s:e].strip():
            continue  # layout: structural, not counted
        first = s + len(text[s:e]) - len(text[s:e].lstrip())  # first non-space character
        while j < len(spans) and spans[j][1] <= first:
            j += 1
        if j < len(spans) and spans[j][0] <= first < spans[j][1]:
            owner[i] = j
    return hits, owner


class Tally:
    """Right and counted tokens, all and identifiers alone."""

    def __init__(self) -> None:
        self.right = self.total = self.id_right = self.id_total = 0

    def add(self, good: bool, identifier: bool) -> None:
        """Count one token."""
        self.total += 1
        self.right += good
        if identifier:
            self.id_total += 1
            self.id_right += good

    def summary(self, files: int) -> dict:
        """The accuracies, with how many tokens and files they are over."""
        return {
            "accuracy": self.right / max(self.total, 1),
            "identifier_accuracy": self.id_right / max(self.id_total, 1),
            "tokens": self.total,
            "files": files,
        }


def held_out_texts(corpus: Path, n_files: int, seed: int) -> list[str]:
    """The test files token accuracy is measured on (short ones, a seeded sample)."""
    files = [r["text"] for r in iter_split(corpus, "test") if len(r["text"]) < MAX_CHARS]
    random.Random(seed).shuffle(files)
    return files[:n_files]


def token_accuracy(model: Path, corpus: Path, n_files: int = 40, seed: int = 0) -> dict:
    """Accuracy over all counted lexical tokens, and over identifiers alone."""
    lm = OnnxDecoder(model)
    texts = held_out_texts(corpus, n_files, seed)
    tally = Tally()
    for text in tqdm(texts, desc="token accuracy", leave=False):
        hits, owner = file_hits(lm, text)
        spans = lexical_spans(text)
        ok: dict[int, bool] = {}
        for piece, tok in enumerate(owner):
            if tok >= 0:
                ok[tok] = ok.get(tok, True) and bool(hits[piece])
        for tok, good in ok.items():
            tally.add(good, spans[tok][2] == "identifier")
    return tally.summary(len(texts))
