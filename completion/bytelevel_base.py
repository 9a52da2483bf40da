"""What the byte-level algorithm asks of a tokenizer and of a language model, and what it
works on.

A `ByteTokenizer` encodes bytes (not text: byte mode stops inside UTF-8 characters); a
`Scorer` gives next-token log-probabilities after a shared prefix, batched. `StatelessScorer`
adapts a plain `TokenLM` (toy models, the brute-force reference) to that interface. A `State`
is a byte string with its cover encodings (a `CoverSet`) and next-byte distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

END = 256  # next-byte distributions have 257 entries: 256 bytes, then "the text ends here"
Ids = tuple[int, ...]


def lse(a: np.ndarray | Sequence[float]) -> float:
    """log(sum(exp(a))), -inf for an empty or all -inf input."""
    a = np.asarray(a, dtype=np.float64)
    m = a.max(initial=-np.inf)
    return float(m) if not np.isfinite(m) else float(m + np.log(np.exp(a - m).sum()))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class ByteTokenizer:
    """A tokenizer over bytes: `encode`, `token_bytes` (b"" for special ids), pre-tokens.

    The last four methods describe a BPE well enough for `ValidityIndex` to decide validity
    without encoding; a tokenizer that cannot describe itself returns None and gets the slow,
    exact path (one encode per candidate).
    """

    token_bytes: list[bytes]
    special_ids: frozenset[int]

    def encode(self, data: bytes | str) -> list[int]:
        """The canonical encoding of `data`."""
        raise NotImplementedError

    def pretoken_starts(self, data: bytes) -> list[int]:
        """Byte offsets where the pre-tokens of `data` start."""
        raise NotImplementedError

    def encode_batch(self, items: Sequence[bytes]) -> list[list[int]]:
        """`encode` of each item."""
        return [self.encode(x) for x in items]

    def decode(self, ids: Sequence[int]) -> bytes:
        """The bytes of `ids` (special ids spell nothing)."""
        return b"".join(self.token_bytes[i] for i in ids)

    def is_valid(self, ids: Sequence[int]) -> bool:
        """True iff `ids` is the canonical encoding of its own bytes."""
        return self.encode(self.decode(ids)) == list(ids)

    def bpe(self, piece: bytes) -> list[int]:
        """The BPE of one pre-token, without pre-tokenizing it."""
        raise NotImplementedError

    def merges(self) -> list[tuple[int, int, int]] | None:
        """The merges as (left id, right id, result id), by rank; None if not a plain BPE."""
        return None

    def added_texts(self) -> list[bytes]:
        """The texts that `encode` turns into added tokens before pre-tokenizing."""
        return []

    def char_classes(self) -> Callable[[str], str | None] | None:
        """The pre-tokenizer's character classes, as a map from a character to a stand-in that
        every context pre-tokenizes alike (None: unsure); None if the pre-tokenizer is not one
        whose classes are known."""
        return None


class TokenLM(Protocol):
    """A language model over token ids: log-probabilities of the next token after a prefix."""

    def next_logprobs(self, prefix_ids: Sequence[int]) -> np.ndarray:
        """(V,) log-probabilities of the token that follows `prefix_ids`."""
        ...


class TokenStream(Protocol):
    """Incremental decoding: `row` is the next-token log-probs, `push` appends a token."""

    row: np.ndarray
    room: int  # how many more tokens fit in the model's context

    def push(self, token: int) -> None:
        """Append `token` and update `row`."""
        ...


class Scorer(Protocol):
    """What the algorithm asks of a model: rows after a shared prefix, batched."""

    def rows(self, prefix: Ids, tails: Sequence[Ids]) -> dict[Ids, np.ndarray]:
        """Log-prob rows after `prefix + tail[:k]`, for every tail and k, keyed by tail[:k]."""
        ...

    def stream(self, prefix: Ids, ids: Ids) -> TokenStream:
        """A token-by-token decoder positioned after `prefix + ids`."""
        ...


class _ListStream:
    def __init__(self, lm: TokenLM, ids: list[int]) -> None:
        self.lm, self.ids, self.room = lm, ids, 1 << 30
        self.row = lm.next_logprobs(ids)

    def push(self, token: int) -> None:
        self.ids.append(token)
        self.row = self.lm.next_logprobs(self.ids)


class StatelessScorer:
    """A `Scorer` over a `TokenLM`: one `next_logprobs` call per distinct prefix."""

    def __init__(self, lm: TokenLM) -> None:
        self.lm = lm

    def rows(self, prefix: Ids, tails: Sequence[Ids]) -> dict[Ids, np.ndarray]:
        """Rows after `prefix + tail[:k]`, computed one by one."""
        out: dict[Ids, np.ndarray] = {}
        for tail in [(), *tails]:
            for k in range(len(tail) + 1):
                if tail[:k] not in out:
                    out[tail[:k]] = np.asarray(self.lm.next_logprobs(prefix + tail[:k]), np.float64)
        return out

    def stream(self, prefix: Ids, ids: Ids) -> TokenStream:
        """Decoding that recomputes from scratch at every step (fine for toy models)."""
        return _ListStream(self.lm, [*prefix, *ids])


@dataclass
class Cover:
    """A cover encoding after the shared head: `ids` (last token included), the byte offset
    where its last token starts, and log P(ids | context + head)."""

    ids: Ids
    start: int
    logq: float


@dataclass
class CoverSet:
    """Covers as arrays (a state holds hundreds): cover k is heads[head[k]] + (last[k],), its
    last token starting at byte start[k], with log-probability logq[k] after the prefix."""

    heads: list[Ids]
    head: np.ndarray
    last: np.ndarray
    start: np.ndarray
    logq: np.ndarray

    @classmethod
    def of(cls, groups: Sequence[tuple[Ids, int, np.ndarray, np.ndarray]]) -> CoverSet:
        """From (head, start, last tokens, their logq) groups."""
        sizes = [len(ts) for _, _, ts, _ in groups]
        return cls(
            [h for h, _, _, _ in groups],
            np.repeat(np.arange(len(groups), dtype=np.int64), sizes),
            np.concatenate([np.zeros(0, np.int64), *(ts for _, _, ts, _ in groups)]),
            np.repeat(np.asarray([st for _, st, _, _ in groups], np.int64), sizes),
            np.concatenate([np.zeros(0), *(q for _, _, _, q in groups)]),
        )

    def __len__(self) -> int:
        return len(self.last)

    def cover(self, k: int) -> Cover:
        """Cover k as whole ids."""
        return Cover(
            (*self.heads[self.head[k]], int(self.last[k])), int(self.start[k]), float(self.logq[k])
        )

    def subset(self, keep: np.ndarray) -> CoverSet:
        """The covers where `keep` is true, heads renumbered."""
        kept = self.head[keep]
        used = np.bincount(kept, minlength=len(self.heads)) > 0  # (a few heads: no sort)
        renumber = np.cumsum(used) - 1
        heads = [h for h, u in zip(self.heads, used.tolist(), strict=True) if u]
        return CoverSet(heads, renumber[kept], self.last[keep], self.start[keep], self.logq[keep])

    def __add__(self, other: CoverSet) -> CoverSet:
        return CoverSet(
            self.heads + other.heads,
            np.concatenate([self.head, other.head + len(self.heads)]),
            *(
                np.concatenate([getattr(self, f), getattr(other, f)])
                for f in ("last", "start", "logq")
            ),
        )


@dataclass
class State:
    """A byte string `data`, its covers, and (once computed) its next-byte distribution."""

    data: bytes
    cut: int
    prefix: Ids  # context + encode(data[:cut]): the KV-cached part shared by every cover
    cs: CoverSet
    canon: Ids  # encode(data[cut:]): new tokens after data start from here
    canon_logq: float | None = None
    row: np.ndarray | None = None  # next-token log-probs after prefix + canon
    ext: CoverSet | None = None  # covers of data + b whose last token starts after data
    dist: np.ndarray | None = None  # (257,) next-byte distribution
    log_mass: float = -math.inf  # log of the unnormalised mass behind `dist`

    @property
    def covers(self) -> list[Cover]:
        """The covers, one object each."""
        return [self.cs.cover(k) for k in range(len(self.cs))]

    @property
    def logq(self) -> float:
        """log P(data[cut:] | prefix): the covers' total mass."""
        return 0.0 if len(self.data) == self.cut else lse(self.cs.logq)


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of `row`, largest first, ties by index (k = 1 is
    `np.argmax`); a partition, not a sort of the whole vocabulary, for the beams' rows."""
    if k >= len(row):
        return np.argsort(-row, kind="stable")
    if k == 1:
        return np.asarray([int(np.argmax(row))])
    kth = row[np.argpartition(-row, k - 1)[k - 1]]
    idx = np.flatnonzero(row >= kth)  # all ties with the k-th, so that the lowest index wins
    return idx[np.lexsort((idx, -row[idx]))][:k]


def best_extensions(
    rows: Sequence[np.ndarray], totals: Sequence[float], width: int
) -> list[tuple[float, int, int, float]]:
    """One beam step: the `width` likeliest (total + log-prob, branch, token, log-prob) over
    every branch's row, best first; tokens a row rules out (-inf) are never taken."""
    options = [
        (total + float(row[t]), i, int(t), float(row[t]))
        for i, (row, total) in enumerate(zip(rows, totals, strict=True))
        for t in top_k(row, width)
        if np.isfinite(row[t])
    ]
    options.sort(key=lambda o: o[0], reverse=True)
    return options[:width]


def along(rows: dict[Ids, np.ndarray], ids: Ids) -> float:
    """log P(ids | prefix) from rows keyed by ids[:k]."""
    return float(sum(rows[ids[:k]][t] for k, t in enumerate(ids)))


def by_first_byte(first: np.ndarray, logq: np.ndarray) -> np.ndarray:
    """(257,) log of the summed probability of the tokens that start with each byte. One
    shift for all bytes: a byte that underflows holds under e^-700 of the largest mass, which
    the normalised distribution could not show either."""
    top = logq.max(initial=-np.inf)
    if not np.isfinite(top):
        return np.full(END + 1, -np.inf)
    total = np.bincount(first, weights=np.exp(logq - top), minlength=END + 1)
    with np.errstate(divide="ignore"):
        return top + np.log(total)


def above_tail(p: np.ndarray, tol: float) -> np.ndarray:
    """Mask of what remains after dropping the least probable entries while they hold at most
    `tol` in all (the later entry goes first among equals). Only entries under `tol` can go,
    so only those are sorted."""
    low = np.flatnonzero(p <= tol)
    small = np.sort(p[low])
    m = int((np.cumsum(small) <= tol).sum())  # how many are dropped
    keep = np.ones(len(p), bool)
    if m:
        v = small[m - 1]
        keep[low[p[low] <= v]] = False
        ties = low[p[low] == v]
        keep[ties[: len(ties) - (m - int((small < v).sum()))]] = True
    return keep
