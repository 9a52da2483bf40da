"""Which tokens may follow a byte string: the cover validity check, without one encode per token.

A candidate token t after a byte string `base` is kept iff encode(base + t) ends with t. The
byte-level search asks this for every token of the vocabulary at every byte, so encoding each
candidate (the exact, slow path) costs O(V) tokenizer calls per byte. Two facts decide it
without running BPE on base + t:

- Pre-tokens. A regex pre-tokenizer treats characters by class (letter, digit, space, other;
  `ByteTokenizer.char_classes`), so t can be replaced by its *shape* (`squeeze`): pre-tokenizing
  base + shape(t) tells whether a pre-token starts where t starts (a *split*), whether t
  continues the last pre-token of base from some offset s (a *glue*), or whether a pre-token
  starts inside t (then t cannot be last). A vocabulary has about a hundred shapes; base is
  squeezed too, so the probes are shared by every base of the same shape.
- Merges. After a split, encode(base + t) ends with t iff encode(t) == [t]. After a glue, the
  last pre-token is w + t with w = base[s:], and BPE(w + t) == BPE(w) + [t] iff no merge ever
  joins a symbol of w's side with one of t's side. Merges happen in rank order (a token's
  merge ranks after the merges that built its parts), so that depends only on the last token
  a of BPE(w) and on t: it happens iff some merge (u, v) -> z has u on a's right spine, v on
  t's left spine, rank(z) below the merge that consumes u in a, and at most the one that
  consumes v in t (ties go to the leftmost pair). For a fixed a, the tokens t whose left spine
  holds v past that rank form a contiguous range of an Euler tour of the "left part" forest,
  so one a costs a few numpy operations for the whole vocabulary (cached per a).

Tokenizers that cannot describe their merges or pre-token classes take the slow path, and so
do the few cases where encoding would find an added token's text (`<fim_middle>`), which it
takes out before pre-tokenizing.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from .bytelevel_base import ByteTokenizer, Ids

# training/tokenizer.py's pre-tokenizer regex (a test keeps the two equal): GPT-2's without
# contractions, with `_` as a letter. Its classes: [\p{L}_], \p{N}, " ", other \s, the rest.
PROJECT_PATTERN = r" ?[\p{L}_][\p{L}\p{N}_]*| ?\p{N}+| ?[^\s\p{L}\p{N}_]+|\s+(?!\S)|\s+"
ASCII_SPACE = " \t\n\x0b\x0c\r"  # what the regex's \s matches below 128
_INF = np.iinfo(np.int64).max
ARRAYS_KEPT = 16  # vocabulary-sized arrays cached per squeezed base (4x that per last id)
Classes = Callable[[str], "str | None"]


def project_classes(ch: str) -> str | None:
    """The class of `ch` under PROJECT_PATTERN, as a representative character; None if unsure.
    A lone surrogate stands for a byte that is not UTF-8, which HFByteTokenizer pre-tokenizes
    as a letter."""
    o = ord(ch)
    if ch in ASCII_SPACE or ch == "_":
        return ch
    if o < 128:
        return "a" if ch.isalpha() else "0" if ch.isdigit() else "."
    if 0xDC80 <= o <= 0xDCFF:
        return "a"
    cat = unicodedata.category(ch)
    if ch.isspace() or cat == "Cn":  # other Unicode versions may disagree: take the slow path
        return None
    return "a" if cat[0] == "L" else "0" if cat[0] == "N" else "."


def ascii_classes(ch: str) -> str | None:
    """`project_classes` for the ASCII patterns of the toy BPE (other bytes: unknown)."""
    return project_classes(ch) if ord(ch) < 128 else None


def squeeze(data: bytes, classes: Classes) -> tuple[bytes, list[int]] | None:
    """`data` as its characters' classes, runs of one class cut to two (the patterns' `+`, `*`
    and one-character lookahead cannot tell two from more), and the byte offset in `data` of
    each class character (the second of a cut run stands for the run's last), then len(data).
    Pre-token starts in the squeezed string map to those of `data` through the offsets."""
    out: list[str] = []
    at: list[int] = []
    pos = 0
    for ch in data.decode("utf-8", errors="surrogateescape"):
        c = classes(ch)
        if c is None:
            return None
        if len(out) >= 2 and out[-1] == out[-2] == c:
            at[-1] = pos
        else:
            out.append(c)
            at.append(pos)
        o = ord(ch)
        pos += (
            1 if o < 0x80 or 0xDC80 <= o <= 0xDCFF else 2 if o < 0x800 else 3 if o < 0x10000 else 4
        )
    return "".join(out).encode("ascii"), [*at, pos]


def open_char(data: bytes) -> bool:
    """True if `data` ends inside a UTF-8 character that more bytes could complete."""
    for k in range(1, min(4, len(data)) + 1):
        b = data[-k]
        if b < 0x80:
            return False
        if b >= 0xC0:
            return (2 if b < 0xE0 else 3 if b < 0xF0 else 4) > k
    return False


class MergeTree:
    """A BPE's merges as trees, for the pair test in the module docstring."""

    def __init__(self, merges: list[tuple[int, int, int]], n_vocab: int) -> None:
        self.left, self.right = np.full(n_vocab, -1), np.full(n_vocab, -1)
        self.rank = np.full(n_vocab, -1)
        for r, (x, y, z) in enumerate(merges):
            if self.rank[z] >= 0:
                raise ValueError("a token made by two merges")
            self.left[z], self.right[z], self.rank[z] = x, y, r
        made = self.rank >= 0
        parts = np.maximum(self.rank[self.left[made]], self.rank[self.right[made]])
        if (parts >= self.rank[made]).any():  # ranks must be a build order: time runs with rank
            raise ValueError("a merge ranks before the merges that make its parts")
        children: list[list[int]] = [[] for _ in range(n_vocab)]  # by left part, rank order
        for z in sorted(np.flatnonzero(self.rank >= 0), key=lambda z: self.rank[z]):
            children[self.left[z]].append(int(z))
        self.tin, self.tout = np.zeros(n_vocab, np.int64), np.zeros(n_vocab, np.int64)
        order: list[int] = []
        for root in np.flatnonzero(self.left < 0):
            stack = [(int(root), 0)]
            while stack:  # iterative Euler tour: left parts nest up to the longest token
                v, i = stack.pop()
                if i == 0:
                    self.tin[v] = len(order)
                    order.append(v)
                if i < len(children[v]):
                    stack += [(v, i + 1), (children[v][i], 0)]
                else:
                    self.tout[v] = len(order)
        self.order = np.asarray(order, np.int64)
        # merge z = (u, v): t is blocked if its left spine holds v and v's parent there was
        # built at rank >= rank(z): v itself, or the subtrees of those children of v
        self.lo = np.zeros(n_vocab, np.int64)
        by_left: list[list[int]] = [[] for _ in range(n_vocab)]
        for z in np.flatnonzero(self.rank >= 0):
            v, kids = self.right[z], children[self.right[z]]
            k = int(np.searchsorted([self.rank[p] for p in kids], self.rank[z]))
            self.lo[z] = self.tin[kids[k]] if k < len(kids) else self.tout[v]
            by_left[self.left[z]].append(int(z))
        self.by_left = [np.asarray(b, np.int64) for b in by_left]

    def blocked(self, a: int) -> np.ndarray:
        """(V,) True for the tokens t such that some merge joins a's side with t's side."""
        opens, closes = [], []  # ranges [open, close) of the Euler tour
        u, consumed = a, _INF  # walk a's right spine, bottom-up
        while True:
            zs = self.by_left[u]
            zs = zs[self.rank[zs] < consumed]
            v = self.right[zs]
            opens += [self.tin[v], self.lo[zs]]
            closes += [self.tin[v] + 1, self.tout[v]]
            if self.left[u] < 0:
                break
            u, consumed = int(self.right[u]), int(self.rank[u])
        size = len(self.order) + 1
        depth = np.bincount(np.concatenate(opens), minlength=size)
        depth -= np.bincount(np.concatenate(closes), minlength=size)
        out = np.zeros(len(self.order), bool)
        out[self.order] = np.cumsum(depth[:-1]) > 0
        return out


class ValidityIndex:
    """`extensions(base, cand)`: the candidates t with encode(base + t) == head + [t], grouped
    by head. Exact; fast where the tokenizer describes itself, else one encode per token."""

    def __init__(self, tok: ByteTokenizer, cache: int = 512) -> None:
        self.tok, self.cache = tok, cache
        tb, n = tok.token_bytes, len(tok.token_bytes)
        merges, self.classes = tok.merges(), tok.char_classes()
        try:
            self.tree = MergeTree(merges, n) if merges is not None else None
        except ValueError:
            self.tree = None
        shapes: list[bytes | None] = [None] * n
        if self.tree is not None and self.classes is not None:
            for t, b in enumerate(tb):
                if b and (sq := squeeze(b, self.classes)) is not None:
                    shapes[t] = sq[0]
        self.shapes = sorted({s for s in shapes if s is not None})
        index = {s: k for k, s in enumerate(self.shapes)}
        self.shape_id = np.asarray([-1 if s is None else index[s] for s in shapes], np.int64)
        self.added = [s for s in tok.added_texts() if s]
        # tokens that could end an added token's text begun in base, or hold one whole
        self.closes = np.asarray([any(s[-1] in b for s in self.added) for b in tb], bool)
        self.shape_id[[any(s in b for s in self.added) for b in tb]] = -1
        ordinary = [t for t in range(n) if tb[t]]
        self.alone = np.zeros(n, bool)  # encode(t) == [t]
        self.word = np.zeros(n, bool)  # BPE(t) == [t]
        if self.shapes:
            encs = tok.encode_batch([tb[t] for t in ordinary])
            for t, enc in zip(ordinary, encs, strict=True):
                self.alone[t], self.word[t] = enc == [t], tok.bpe(tb[t]) == [t]
        self._junctions: OrderedDict[bytes, tuple[np.ndarray, list[tuple[int, ...]]]]
        self._junctions = OrderedDict()
        self._heads: OrderedDict[tuple[bytes, tuple[int, ...]], tuple[Ids, int]] = OrderedDict()
        self._pairs: OrderedDict[int, np.ndarray] = OrderedDict()
        self._slow: OrderedDict[bytes, dict[int, Ids | None]] = OrderedDict()
        # the whole vocabulary as candidates (`every`): its tokens by junction, per squeezed
        # base, and the valid ones of a junction per last id of BPE(w), so that a base costs
        # a few cache look-ups instead of numpy passes over the vocabulary
        self.every = np.asarray(ordinary, np.int64)
        self._members: OrderedDict[bytes, list[np.ndarray]] = OrderedDict()
        self._valid_of: OrderedDict[tuple[bytes, int, int], np.ndarray] = OrderedDict()
        self._prefix_ends = {s[:k] for s in self.added for k in range(1, len(s))}
        self._longest_added = max((len(s) for s in self.added), default=0)

    def _lru(
        self, table: OrderedDict, key: object, make: Callable[[], object], size: int = 0
    ) -> object:
        if key in table:
            table.move_to_end(key)
            return table[key]
        value = table[key] = make()
        while len(table) > (size or self.cache):
            table.popitem(last=False)
        return value

    def _junctions_of(self, key: bytes) -> tuple[np.ndarray, list[tuple[int, ...]]]:
        """For a squeezed base: each shape's junction number (-1: t is crossed and never
        last; the last slot, -1, stands for no shape: index it by `shape_id`) and each
        junction's pre-token starts up to len(key); the last start is where t's pre-token
        starts (len(key) for a split, earlier for a glue)."""
        table, junctions = np.full(len(self.shapes) + 1, -1, np.int32), {}  # last slot: no shape
        for k, probe in enumerate(self.shapes):
            starts = self.tok.pretoken_starts(key + probe)
            if not any(len(key) < p < len(key) + len(probe) for p in starts):
                cuts = tuple(p for p in starts if p <= len(key))
                table[k] = junctions.setdefault(cuts, len(junctions))
        return table, list(junctions)

    def _head(self, base: bytes, cuts: tuple[int, ...]) -> tuple[Ids, int]:
        """The ids before t: BPE of each pre-token of base, the last one being w = base[s:]
        for a glue; and the last id of BPE(w) (-1 for a split)."""
        pieces = [self.tok.bpe(base[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
        if cuts[-1] == len(base):
            return tuple(i for p in pieces for i in p), -1
        w = self.tok.bpe(base[cuts[-1] :])
        return (*(i for p in pieces for i in p), *w), w[-1]

    def _pair_ok(self, a: int) -> np.ndarray:
        """(V,) True for the tokens t with BPE(w + t) == BPE(w) + [t] when BPE(w) ends with a."""
        tree = self.tree
        assert tree is not None
        return self._lru(self._pairs, a, lambda: self.word & ~tree.blocked(a), 8 * ARRAYS_KEPT)  # type: ignore[return-value]

    def _ends_added_prefix(self, base: bytes) -> bool:
        """True if `base` ends with the start of an added token's text (`<fim_mi`)."""
        longest = min(self._longest_added - 1, len(base))
        return any(base[len(base) - k :] in self._prefix_ends for k in range(1, longest + 1))

    def extensions(
        self, base: bytes, cand: np.ndarray | None = None
    ) -> list[tuple[Ids, np.ndarray]]:
        """The valid candidates, as (head, tokens) groups: encode(base + t) == head + [t].
        `cand` None: every ordinary token (`every`), the search's usual question, answered
        from caches. Junctions are cached by the squeezed base, so `.pa`, `.pat` and `.va`
        share them."""
        sq = squeeze(base, self.classes) if self.shapes and not open_char(base) else None
        if sq is None or any(s in base for s in self.added):
            return self._slow_extensions(base, self.every if cand is None else cand)
        key, at = sq
        of_shape, junctions = self._lru(self._junctions, key, lambda: self._junctions_of(key))  # type: ignore[misc]
        closing = self._ends_added_prefix(base)
        if cand is None:
            return self._every_extension(base, key, at, junctions, closing)
        slow = self.shape_id[cand] < 0
        if closing:
            slow |= self.closes[cand]
        jid = np.where(slow, -1, of_shape[self.shape_id[cand]])
        out = []
        for j in np.flatnonzero(np.bincount(jid + 1, minlength=len(junctions) + 1)[1:]):
            head, a = self._junction_head(base, at, junctions[j])
            ts = cand[jid == j]
            out.append((head, ts[self.alone[ts] if a < 0 else self._pair_ok(a)[ts]]))
        if slow.any():
            out += self._slow_extensions(base, cand[slow])
        return out

    def _junction_head(
        self, base: bytes, at: list[int], junction: tuple[int, ...]
    ) -> tuple[Ids, int]:
        """`_head` for a junction (pre-token starts in squeezed positions), cached."""
        cuts = tuple(at[c] for c in junction)
        return self._lru(self._heads, (base, cuts), lambda: self._head(base, cuts))  # type: ignore[return-value]

    def _every_extension(
        self,
        base: bytes,
        key: bytes,
        at: list[int],
        junctions: list[tuple[int, ...]],
        closing: bool,
    ) -> list[tuple[Ids, np.ndarray]]:
        """`extensions` over every ordinary token: the tokens of each junction and the valid
        ones among them come from caches keyed by the squeezed base and the last id a."""
        members: list[np.ndarray] = self._lru(
            self._members, key, lambda: self._members_of(key), ARRAYS_KEPT
        )  # type: ignore[assignment]
        out = []
        for j, ts in enumerate(members[:-1]):
            if not len(ts):
                continue
            head, a = self._junction_head(base, at, junctions[j])
            valid = self._lru(
                self._valid_of,
                (key, j, a),
                lambda ts=ts, a=a: ts[self.alone[ts] if a < 0 else self._pair_ok(a)[ts]],
                4 * ARRAYS_KEPT,
            )
            if closing:  # tokens that could close an added text take the slow path
                valid = valid[~self.closes[valid]]
            out.append((head, valid))
        slow = members[-1]
        if closing:
            slow = np.union1d(slow, self.every[self.closes[self.every]])
        if len(slow):
            out += self._slow_extensions(base, slow)
        return out

    def _members_of(self, key: bytes) -> list[np.ndarray]:
        """The ordinary tokens of each junction of a squeezed base, in vocabulary order, then
        the tokens without a shape (the slow path)."""
        of_shape, junctions = self._lru(self._junctions, key, lambda: self._junctions_of(key))  # type: ignore[misc]
        jid, every = of_shape[self.shape_id[self.every]], self.every.astype(np.int32)
        slow = every[self.shape_id[self.every] < 0]  # (crossed tokens are never last: gone)
        return [every[jid == j] for j in range(len(junctions))] + [slow]

    def _slow_extensions(self, base: bytes, cand: np.ndarray) -> list[tuple[Ids, np.ndarray]]:
        """The definition: encode base + t for each candidate (cached per base)."""
        known: dict[int, Ids | None] = self._lru(self._slow, base, dict)  # type: ignore[assignment]
        todo = [int(t) for t in cand if int(t) not in known]
        tb = self.tok.token_bytes
        for t, enc in zip(todo, self.tok.encode_batch([base + tb[t] for t in todo]), strict=True):
            known[t] = tuple(enc) if enc[-1:] == [t] else None
        groups: dict[Ids, list[int]] = {}
        for t in cand.tolist():
            if (enc := known[t]) is not None:
                groups.setdefault(enc[:-1], []).append(t)
        return [(head, np.asarray(ts, np.int64)) for head, ts in groups.items()]
