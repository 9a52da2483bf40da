"""Token-level accuracy (CodeXGLUE rules) of a released decoder, teacher-forced on held-out files.

CodeXGLUE's token-level completion scores lexical tokens of code with comments removed and
string literals normalized to one `<STR_LIT>` token, and leaves out structural tokens
(newline, indent, dedent, end of text). A BPE model is right on a lexical token when it
predicts every piece of it. Here the decoder reads the files as they are (its prompt keeps
comments and literals) and:

- a lexical token is right iff every BPE piece that overlaps it is the model's argmax given
  all the text before that piece (a piece such as `):` belongs to both tokens);
- a string literal is right iff the model predicts that a string starts there: the pieces
  up to its opening quote are the argmax, or the argmax piece puts a quote where the quote
  is (any quote: every literal is `<STR_LIT>`), its content is not scored;
- comments are not scored (CodeXGLUE drops them).

The strict count ("exact") scores every character of strings and every comment token as
well; the report gives both. Numbers are matched exactly in both (CodeXGLUE normalizes rare
numbers and keeps a short list of frequent strings verbatim: the two pull in opposite
directions).
"""

from __future__ import annotations

import bisect
import io
import random
import token
import tokenize
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fillpoint.completion.runtime import OnnxDecoder

from .corpus import iter_split

MAX_CHARS = 20_000  # keeps the run short; long files would dominate the count
NOT_COUNTED = {token.NEWLINE, token.NL, token.INDENT, token.DEDENT, token.ENDMARKER}
QUOTES = "'\""


def lexical_spans(text: str) -> list[tuple[int, int, str]]:
    """(start char, end char, kind) of the lexical tokens of a file, comments included."""
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


def argmax_pieces(
    lm: OnnxDecoder, text: str
) -> tuple[list[int], list[tuple[int, int]], np.ndarray]:
    """The file's BPE pieces, their character offsets, and the model's argmax for each."""
    enc = lm.tokenizer.encode(text, add_special_tokens=False)
    ids = [lm.eot_token, *enc.ids]
    window = lm.block_size
    preds = np.zeros(len(enc.ids), np.int64)
    # Non-overlapping windows that each start with the piece before them: every piece is
    # predicted once, with at least a few hundred pieces of context beyond the first window.
    for start in range(0, len(enc.ids), window - 1):
        chunk = ids[start : start + window]
        logits, _ = lm.run(np.asarray([chunk], np.int64), lm.empty_past(1))
        preds[start : start + len(chunk) - 1] = logits[0, :-1].argmax(-1)
    return list(enc.ids), list(enc.offsets), preds


def _string_predicted(
    q: int, first: int, last: int, ids, offsets, preds, piece_text: Sequence[str]
) -> bool:
    """Whether the model predicts a string opening at character `q` (its first quote):
    pieces `first..last` overlap the literal up to that quote."""
    if any(preds[i] != ids[i] for i in range(first, last)):
        return False
    if preds[last] == ids[last]:
        return True
    j = q - offsets[last][0]  # the quote's place in the piece that holds it
    want, got = piece_text[ids[last]], piece_text[preds[last]]
    return len(got) > j and got[:j] == want[:j] and got[j] in QUOTES


def score_tokens(
    text: str, ids, offsets, preds, piece_text: Sequence[str]
) -> list[tuple[str, bool, bool | None]]:
    """Per lexical token: its kind, right under the exact count, right under CodeXGLUE's
    rules (None where those rules do not score it: comments)."""
    piece_starts = [s for s, _ in offsets]
    out = []
    for s, e, kind in lexical_spans(text):
        first = max(bisect.bisect_right(piece_starts, s) - 1, 0)
        while first > 0 and offsets[first - 1][1] > s:
            first -= 1  # the bytes of one character can be several pieces
        last = first
        while last + 1 < len(ids) and offsets[last + 1][0] < e:
            last += 1
        exact = all(preds[i] == ids[i] for i in range(first, last + 1))
        if kind == "comment":
            out.append((kind, exact, None))
            continue
        glue = exact
        if kind == "string":
            q = s + next((k for k, c in enumerate(text[s:e]) if c in QUOTES), 0)
            holder = first
            while holder < last and offsets[holder][1] <= q:
                holder += 1
            glue = _string_predicted(q, first, holder, ids, offsets, preds, piece_text)
        out.append((kind, exact, glue))
    return out


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
    """Accuracy over the lexical tokens CodeXGLUE scores and over identifiers alone, with
    the exact count (every comment token and every string spelled out) under "exact"."""
    lm = OnnxDecoder(model)
    texts = held_out_texts(corpus, n_files, seed)
    glue, exact = Tally(), Tally()
    for text in tqdm(texts, desc="token accuracy", leave=False):
        ids, offsets, preds = argmax_pieces(lm, text)
        for kind, ok, ok_glue in score_tokens(text, ids, offsets, preds, lm.token_text):
            exact.add(ok, kind == "identifier")
            if ok_glue is not None:
                glue.add(ok_glue, kind == "identifier")
    return {**glue.summary(len(texts)), "exact": exact.summary(len(texts))}
