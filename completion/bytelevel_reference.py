"""The brute-force reference for the byte-level algorithm, and the toy models it runs on.

`ToyBPE` is a small BPE in plain Python and `HashLM` a model with an explicit distribution;
`brute_force_*` sum over every token sequence, so the fast algorithm (`bytelevel.ByteLevel`)
can be checked against the definitions to float precision.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .bytelevel_base import END, ByteTokenizer, Ids, TokenLM, log_softmax
from .bytelevel_valid import ascii_classes

# The project's pre-tokenizer (training/tokenizer.py) with ASCII classes, for the toy BPE.
TOY_PATTERN = rb" ?[A-Za-z_][A-Za-z0-9_]*| ?[0-9]+| ?[^\sA-Za-z0-9_]+|\s+(?!\S)|\s+"
# The same without the `\s+(?!\S)` lookahead: pre-token boundaries never move.
NO_LOOKAHEAD = rb" ?[A-Za-z_][A-Za-z0-9_]*| ?[0-9]+| ?[^\sA-Za-z0-9_]+|\s+"


class ToyBPE(ByteTokenizer):
    """A small BPE in plain Python: a regex pre-tokenizer, then merges applied in rank order."""

    def __init__(
        self,
        alphabet: bytes,
        merges: Sequence[tuple[bytes, bytes]],
        pattern: bytes = TOY_PATTERN,
        specials: int = 1,
    ) -> None:
        self.token_bytes = [b""] * specials + [bytes([c]) for c in alphabet]
        self.special_ids = frozenset(range(specials))
        self.ranks: dict[tuple[bytes, bytes], int] = {}
        for a, b in merges:
            if a + b not in self.token_bytes:  # one id per byte string
                self.ranks[(a, b)] = len(self.ranks)
                self.token_bytes.append(a + b)
        self.ids = {tb: i for i, tb in enumerate(self.token_bytes) if tb}
        self.pattern = re.compile(pattern)

    def __repr__(self) -> str:
        return f"ToyBPE(merges={list(self.ranks)!r}, pattern={self.pattern.pattern!r})"

    def bpe(self, piece: bytes) -> list[int]:
        """Merge the lowest-ranked adjacent pair (the leftmost on ties) until none applies."""
        parts = [piece[j : j + 1] for j in range(len(piece))]
        while len(parts) > 1:
            ranks = [self.ranks.get(p, math.inf) for p in zip(parts, parts[1:], strict=False)]
            j = min(range(len(ranks)), key=ranks.__getitem__)  # leftmost of the best rank
            if ranks[j] == math.inf:
                break
            parts[j : j + 2] = [parts[j] + parts[j + 1]]
        return [self.ids[p] for p in parts]

    def encode(self, data: bytes | str) -> list[int]:
        """Pre-tokenize, then BPE each pre-token (bytes outside the alphabet raise KeyError)."""
        data = data.encode() if isinstance(data, str) else data
        return [i for m in self.pattern.finditer(data) for i in self.bpe(m.group())]

    def pretoken_starts(self, data: bytes) -> list[int]:
        """Byte offsets where the regex matches start."""
        return [m.start() for m in self.pattern.finditer(data)]

    def merges(self) -> list[tuple[int, int, int]] | None:
        """The merges by rank, as ids; None if a merge names a string that is not a token."""
        if not all(a in self.ids and b in self.ids for a, b in self.ranks):
            return None
        return [(self.ids[a], self.ids[b], self.ids[a + b]) for a, b in self.ranks]

    def char_classes(self) -> Callable[[str], str | None] | None:
        """ASCII character classes, for the two patterns above."""
        return ascii_classes if self.pattern.pattern in (TOY_PATTERN, NO_LOOKAHEAD) else None


class HashLM:
    """A toy `TokenLM`: a seeded-hash softmax of the prefix ids. `canonical` masks the tokens
    that would make the sequence invalid, so that every sequence it generates is canonical."""

    def __init__(
        self, tok: ByteTokenizer, seed: int = 0, scale: float = 2.0, canonical: bool = True
    ) -> None:
        self.tok, self.seed, self.scale, self.canonical = tok, seed, scale, canonical
        self.n_vocab = len(tok.token_bytes)
        self._memo: dict[Ids, np.ndarray] = {}

    def next_logprobs(self, prefix_ids: Sequence[int]) -> np.ndarray:
        """(V,) log-probabilities, a deterministic function of `prefix_ids`."""
        key = tuple(int(i) for i in prefix_ids)
        if key not in self._memo:
            z = np.random.default_rng([self.seed, *key]).normal(0.0, self.scale, self.n_vocab)
            if self.canonical:
                for t in range(self.n_vocab):
                    if self.tok.token_bytes[t] and not self.tok.is_valid([*key, t]):
                        z[t] = -np.inf
            self._memo[key] = log_softmax(z)
        return self._memo[key]


def _sequences(
    tok: ByteTokenizer, lm: TokenLM, x: bytes, ids: list[int], text: bytes, p: float
) -> Iterator[tuple[list[int], bytes, float]]:
    """Every token sequence whose text is consistent with x, up to the first that covers it:
    yields (ids, text, probability). Each token has at least one byte, so depth <= len(x)."""
    yield ids, text, p
    if len(text) >= len(x):
        return
    logp = lm.next_logprobs(ids)
    for t, tb in enumerate(tok.token_bytes):
        new = text + tb
        if tb and (new.startswith(x) or x.startswith(new)):
            yield from _sequences(tok, lm, x, [*ids, t], new, p * math.exp(logp[t]))


def brute_force_prefix_prob(tok: ByteTokenizer, lm: TokenLM, x: bytes) -> float:
    """P(text starts with x), summed over all token sequences. A sequence whose text already
    starts with x contributes its whole probability (its continuations sum to one)."""
    return sum(p for _, text, p in _sequences(tok, lm, x, [], b"", 1.0) if text.startswith(x))


def brute_force_next_byte(tok: ByteTokenizer, lm: TokenLM, x: bytes) -> tuple[np.ndarray, float]:
    """The next-byte distribution by enumeration: P(x + b) for every byte and P(text == x,
    then a special token), normalised (zeros when P(x) = 0); and their total, P(x)."""
    mass = np.zeros(END + 1)
    for b in set(b"".join(tok.token_bytes)):
        mass[b] = brute_force_prefix_prob(tok, lm, x + bytes([b]))
    for ids, text, p in _sequences(tok, lm, x, [], b"", 1.0):
        if text == x:
            mass[END] += p * sum(math.exp(lm.next_logprobs(ids)[i]) for i in tok.special_ids)
    total = float(mass.sum())
    return (mass / total if total > 0 else mass), total


def brute_force_covers(tok: ByteTokenizer, x: bytes) -> set[Ids]:
    """Cover encodings by definition: valid sequences that first reach or cross the end of x."""
    every = HashLM(tok, canonical=False)  # only the enumeration is used, not the weights
    return {
        tuple(ids)
        for ids, text, _ in _sequences(tok, every, x, [], b"", 1.0)
        if ids and len(text) >= len(x) and tok.is_valid(ids)
    }
