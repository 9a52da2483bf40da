"""Lexical tokens of Python source, and the n-gram baselines built on them.

Tokens are Python's own (`tokenize`): names, operators, numbers, and string literals
normalized to `<str>` as in CodeXGLUE; `<nl>` marks the end of a statement (logical line).
"""

from __future__ import annotations

import io
import keyword
import token
import tokenize
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import iter_split

LEXICAL = {token.NAME, token.OP, token.NUMBER, token.STRING}
END = "<nl>"
START = "<s>"


def logical_lines(text: str) -> tuple[list[list[tuple[int, str]]], list[tuple[int, str]]]:
    """(char offset, token) of each finished statement, and of the unfinished rest (if any)."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    done: list[list[tuple[int, str]]] = []
    cur: list[tuple[int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == token.NEWLINE:
                done.append(cur)
                cur = []
            elif tok.type in LEXICAL:
                s = tok.string if tok.type != token.STRING else "<str>"
                cur.append((starts[tok.start[0] - 1] + tok.start[1], s))
    except (tokenize.TokenError, SyntaxError):
        pass  # unclosed brackets or strings at the end: what came before still counts
    return done, cur


def lex(text: str) -> list[str]:
    """The file's lexical tokens with `<nl>` after each finished statement."""
    done, rest = logical_lines(text)
    return [t for line in done for t in (*(s for _, s in line), END)] + [s for _, s in rest]


def context_tokens(head: str) -> list[str]:
    """Lexical tokens before a cursor; the statement the cursor is in stays open."""
    toks = lex(head + "\n")
    # tokenize closes a last line that has code on it; the cursor's statement is not over
    if toks and toks[-1] == END and head.rsplit("\n", 1)[-1].strip():
        toks = toks[:-1]
    return toks


def first_statement(text: str) -> tuple[list[str], bool]:
    """The tokens of the statement `text` starts with, and whether it ends within `text`."""
    done, rest = logical_lines(text)
    if done:
        return [s for _, s in done[0]], True
    return [s for _, s in rest], False


@dataclass
class Ngram:
    """Trigram and bigram counts of lexical tokens over training files."""

    tri: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))
    bi: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    @classmethod
    def from_corpus(cls, corpus: Path, max_files: int = 3000) -> Ngram:
        """Counts over the first `max_files` train files."""
        model = cls()
        for i, rec in enumerate(iter_split(corpus, "train")):
            if i >= max_files:
                break
            toks = [START, START, *lex(rec["text"])]
            for a, b, c in zip(toks, toks[1:], toks[2:], strict=False):
                model.tri[(a, b)][c] += 1
                model.bi[b][c] += 1
        return model

    def names(self, head: str, typed: str) -> list[str]:
        """Names that follow the last two tokens before `head`'s end, most frequent first."""
        toks = [START, START, *context_tokens(head)]
        found = self.tri.get((toks[-2], toks[-1]), Counter())
        names = [w for w, _ in found.most_common() if w.isidentifier() and not keyword.iskeyword(w)]
        return [w for w in names[:50] if w.startswith(typed)]

    def statement(self, head: str, n: int) -> list[str]:
        """Greedy continuation of the statement at `head`'s end (trigram, bigram back-off)."""
        toks = [START, START, *context_tokens(head)]
        out: list[str] = []
        while len(out) < n:
            found = self.tri.get((toks[-2], toks[-1])) or self.bi.get(toks[-1])
            if not found:
                break
            nxt = found.most_common(1)[0][0]
            if nxt == END:
                break
            out.append(nxt)
            toks.append(nxt)
        return out


def file_copy(head: str, n: int) -> list[str]:
    """Copy what followed the last earlier occurrence of the two tokens before the cursor.

    A cache baseline for statements: code repeats itself within a file.
    """
    toks = context_tokens(head)
    for k in (2, 1):
        if len(toks) <= k:
            continue
        key = toks[-k:]
        for i in range(len(toks) - k - 1, -1, -1):
            if toks[i : i + k] == key:
                out = []
                for t in toks[i + k :]:
                    if t == END or len(out) == n:
                        break
                    out.append(t)
                return out
    return []
