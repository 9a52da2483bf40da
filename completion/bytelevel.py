r"""Exact next-byte probabilities from a BPE language model (Phan et al., ICLR 2025).

A prompt that ends inside a token is an encoding the model rarely saw. Instead of trusting
that encoding, we sum over its *cover encodings*: the valid encodings (`encode(decode(c)) ==
c`) whose last token reaches or crosses the end of the prompt x. Then `P(x) = sum P(c)` and
`P(b | x) = P(x + b) / P(x)`.

Covers are built as `encode(x[:i] + t)` for split points `i < len(x)` and tokens t that start
with `x[i:]` (found with a trie), kept when that encoding ends with t itself: such an encoding
is valid by construction, and every cover is one. With prefix-closed encodings this is
DESIGN.md's `encode(x[:i]) + [t]`; the project's pre-tokenizer is not prefix-closed, since a
whitespace run gives its last space to a following word (`[' ', '\n', 'a']` is valid, its head
`[' ', '\n']` is not), and building the head from the whole string keeps those covers. Which
candidates pass is decided by `bytelevel_valid.ValidityIndex` without encoding each one.

Exactness: the sums are exact for any model (the tests use a toy model that only generates
canonical encodings, against brute force). What a real model does that the sum cannot see is
an encoding that is not valid yet but becomes valid later, such as `[..., '\n   ', ' ']`
waiting for a word; its mass shows up one byte later, and next-byte distributions are
normalised over what was found.

Modules: this one holds the algorithm (`ByteLevel`) and ensembling; `bytelevel_base` the
tokenizer and model interfaces, `bytelevel_valid` the validity check, `bytelevel_onnx` the
released tokenizer and model and the engine's entry point, `bytelevel_reference` the brute
force it is tested against.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence

import numpy as np

from .bytelevel_base import (
    END,
    ByteTokenizer,
    Cover,
    CoverSet,
    Ids,
    Scorer,
    State,
    StatelessScorer,
    TokenLM,
    above_tail,
    along,
    best_extensions,
    by_first_byte,
    lse,
    top_k,
)
from .bytelevel_valid import ValidityIndex

WORD_BYTES = frozenset(b"_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") | {
    *range(0x80, 0x100)  # non-ASCII identifier characters, byte by byte
}


def _whole_chars(data: bytes) -> bool:
    """True if `data` is UTF-8 that does not stop inside a character."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _kth_best(done: dict[bytes, float], k: int) -> float:
    """The k-th best log-probability of the finished names (-inf with fewer): a branch below
    it cannot enter the top k, since extending a name only loses mass."""
    return sorted(done.values(), reverse=True)[k - 1] if len(done) >= k else -math.inf


def _top_names(done: dict[bytes, float], k: int) -> list[tuple[bytes, float]]:
    """The k best finished names with their probabilities, best first."""
    best = sorted(done.items(), key=lambda kv: kv[1], reverse=True)[:k]
    return [(y, math.exp(lp)) for y, lp in best]


class VocabTrie:
    """The vocabulary sorted by bytes: the tokens that start with a given byte string form one
    contiguous run, found by bisection (a trie flattened into an array)."""

    def __init__(self, token_bytes: Sequence[bytes]) -> None:
        pairs = sorted((b, i) for i, b in enumerate(token_bytes) if b)
        self.keys = [b for b, _ in pairs]
        self.ids = np.asarray([i for _, i in pairs], dtype=np.int64)

    def starting_with(self, prefix: bytes) -> np.ndarray:
        """Ids of the tokens whose bytes start with `prefix`, in byte order."""
        lo = bisect_left(self.keys, prefix)
        stem = prefix.rstrip(b"\xff")  # the smallest string above every extension of prefix
        hi = (
            len(self.keys)
            if not stem
            else bisect_left(self.keys, stem[:-1] + bytes([stem[-1] + 1]))
        )
        return self.ids[lo:hi]


def cut_point(tok: ByteTokenizer, x: bytes, window: int = 256) -> int:
    """Where the covers may start: the start of the second-to-last pre-token of `x`.

    Only the last pre-token can still change when bytes are appended; backing off one more
    keeps the boundary safe from regex lookahead (`\\s+(?!\\S)`). Pre-tokenization starts at a
    line start at least `window` bytes back, so long prompts cost a short regex pass.
    """
    lo = x.rfind(b"\n", 0, max(0, len(x) - window)) + 1
    starts = tok.pretoken_starts(x[lo:])
    if lo and len(starts) < 3:
        lo, starts = 0, tok.pretoken_starts(x)
    return lo + starts[-2] if len(starts) >= 2 else 0


class ByteLevel:
    """Next-byte distributions, greedy byte search and identifier beams over a token model.

    `tol` = 0 checks the validity of every candidate token; `tol` > 0 stops checking once
    the unchecked candidates of a row hold less than `tol` of its probability (those are
    dropped), which bounds the error and saves most checks on a peaked model.
    """

    window_step = 128  # `max_prefix` drops the oldest head tokens this many at a time

    def __init__(self, tok: ByteTokenizer, lm: Scorer | TokenLM, tol: float = 0.0) -> None:
        self.tok, self.tol = tok, tol
        self.scorer: Scorer = lm if hasattr(lm, "rows") else StatelessScorer(lm)  # type: ignore[arg-type,assignment]
        self.trie = VocabTrie(tok.token_bytes)
        self.valid = ValidityIndex(tok)
        tb = tok.token_bytes
        self.first_byte = np.asarray([b[0] if b else -1 for b in tb], np.int64)
        self.specials = np.asarray(sorted(i for i, b in enumerate(tb) if not b), np.int64)
        self.ordinary = np.flatnonzero(self.first_byte >= 0)
        self.size = np.asarray([len(b) for b in tb], np.int64)
        self.byte_at = np.zeros((len(tb), max(self.size.max(initial=0), 1)), np.uint8)
        for i, b in enumerate(tb):
            self.byte_at[i, : len(b)] = list(b)
        # the identifier bytes each token starts with: a token with none ends a name (specials
        # too), one that is all of them goes on with it, one with both ends it inside itself
        word = np.isin(self.byte_at, np.fromiter(WORD_BYTES, np.uint8))
        self.non_word_at = ~word & (np.arange(self.byte_at.shape[1]) < self.size[:, None])
        word &= ~self.non_word_at
        self.word_run = np.where(word.all(axis=1), self.size, np.argmin(word, axis=1))
        self.digit_first = (self.first_byte >= ord("0")) & (self.first_byte <= ord("9"))
        # for names after the covers: tokens that end one (specials too), go on with it (at a
        # name's start: not with a digit), or end it inside themselves
        self.name_ends = np.flatnonzero(self.word_run == 0)
        goes_on = (self.word_run == self.size) & (self.size > 0)
        self.name_goes_on = {False: goes_on, True: goes_on & ~self.digit_first}
        inside = np.flatnonzero((self.word_run > 0) & ~goes_on)
        self.name_ends_inside = {False: inside, True: inside[~self.digit_first[inside]]}
        self._recent: dict[bytes, list[int]] = {}  # `_encoded`, oldest first

    def _encoded(self, x: bytes) -> list[int]:
        """encode(x), kept for the last few prompts: a list and ghost text at one cursor, and
        the lists made ahead of the next keystroke, start from the same text."""
        if (ids := self._recent.get(x)) is None:
            ids = self._recent[x] = self.tok.encode(x)
            while len(self._recent) > 4:
                del self._recent[next(iter(self._recent))]
        return ids

    def _extensions(
        self, base: bytes, cand: np.ndarray, row: np.ndarray
    ) -> list[tuple[Ids, np.ndarray]]:
        """The candidates t for which encode(base + t) == head + [t], as (head, tokens)
        groups; with `tol` > 0, the least probable candidates by `row` are dropped first."""
        if self.tol > 0 and len(cand):
            cand = cand[above_tail(np.exp(row[cand]), self.tol)]
        elif cand is self.ordinary:
            return self.valid.extensions(base)  # every ordinary token: answered from caches
        return self.valid.extensions(base, cand)

    def _rows(self, prefix: Ids, rows: dict[Ids, np.ndarray], heads: set[Ids]) -> None:
        """Add the rows of `heads` that `rows` lacks (another model call, only when needed)."""
        if missing := [h for h in heads if h not in rows]:
            rows.update(self.scorer.rows(prefix, missing))

    def split(
        self,
        x: bytes,
        context: Sequence[int] = (),
        cut: int | None = None,
        max_prefix: int = 0,
        ahead: int = 0,
    ) -> tuple[int, Ids, Ids]:
        """Where `start` cuts x, the prefix it scores the covers after (context + head: the
        model's KV cache of it is kept), and the canonical encoding of the rest.

        `ahead` > 0: the prefix of the window that `max_prefix` moves to once `ahead` more
        tokens are typed, if it moves by then (else the prefix is empty)."""
        cut = cut_point(self.tok, x) if cut is None else cut
        # the head as x pre-tokenizes it: alone, x[:cut] may end in a whitespace run that x
        # splits (b" \n" + b"a" pre-tokenizes as b" ", b"\n", b"a")
        whole = self._encoded(x)
        ends = np.concatenate([[0], np.cumsum(self.size[whole])])
        k = int(np.searchsorted(ends, cut, side="right")) - 1
        cut, head = int(ends[k]), tuple(whole[:k])  # a pre-token boundary is a token boundary
        canon = tuple(self.tok.encode(x[cut:]))
        if max_prefix and (over := len(context) + len(head) + len(canon) - max_prefix) > 0:
            # drop whole steps, so that the head's start (and the KV cached for it, whose
            # positions are absolute) stays put while the user types
            head = head[min(-(-over // self.window_step) * self.window_step, len(head)) :]
        if ahead:
            over = len(context) + len(head) + len(canon) - max_prefix
            moves = max_prefix and over + ahead > 0 and len(head) > self.window_step
            return cut, (*context, *head[self.window_step :]) if moves else (), canon
        return cut, (*context, *head), canon

    def start(
        self, x: bytes, context: Sequence[int] = (), cut: int | None = None, max_prefix: int = 0
    ) -> State:
        """The covers of `x`: one batched model call after the cached prefix (two when a
        cover's head is not the canonical encoding of its bytes, as with whitespace runs).
        `max_prefix` > 0 keeps context + head + tail within that many tokens by dropping the
        oldest head tokens, `window_step` at a time (never the context)."""
        cut, prefix, canon = self.split(x, context, cut, max_prefix)
        bases = {i: tuple(self.tok.encode(x[cut:i])) for i in range(cut, len(x))}
        rows = dict(self.scorer.rows(prefix, [*set(bases.values()), canon]))
        found = [  # (head, split point, last tokens)
            (h, i, ts)
            for i, base in bases.items()
            for h, ts in self._extensions(x[cut:i], self.trie.starting_with(x[i:]), rows[base])
        ]
        self._rows(prefix, rows, {h for h, _, _ in found})
        cs = CoverSet.of([(h, i, ts, along(rows, h) + rows[h][ts]) for h, i, ts in found])
        return State(x, cut, prefix, cs, canon, along(rows, canon), rows[canon])

    def next_distributions(self, states: Sequence[State]) -> list[np.ndarray]:
        """(257,) next-byte distributions (END last); one batched model call for the states
        that lack their row. Renormalised over the continuations found: for a model that only
        generates valid encodings the normaliser equals P(data) and is a no-op."""
        need = [s for s in states if s.row is None]
        for prefix in {s.prefix for s in need}:
            group = [s for s in need if s.prefix == prefix]
            rows = self.scorer.rows(prefix, [s.canon for s in group])
            for s in group:
                s.row, s.canon_logq = rows[s.canon], along(rows, s.canon)
        for s in states:
            if s.dist is None:
                self._distribution(s)
        return [s.dist for s in states]  # type: ignore[misc]

    def _crossing(self, s: State) -> tuple[np.ndarray, np.ndarray]:
        """Which covers cross the end of data (their next byte is known), and that byte."""
        off = len(s.data) - s.cs.start
        cross = self.size[s.cs.last] > off
        return cross, self.byte_at[s.cs.last[cross], off[cross]]

    def _distribution(self, s: State) -> None:
        """Fill in s.ext, s.dist and s.log_mass from the covers and the row after canon."""
        assert s.row is not None and s.canon_logq is not None
        cross, nxt = self._crossing(s)
        # covers of data + b whose last token starts right after data
        groups = self._extensions(s.data[s.cut :], self.ordinary, s.row)
        rows = {s.canon: s.row}
        self._rows(s.prefix, rows, {h for h, _ in groups})
        head_logq = {h: s.canon_logq if h == s.canon else along(rows, h) for h, _ in groups}
        s.ext = CoverSet.of([(h, len(s.data), ts, head_logq[h] + rows[h][ts]) for h, ts in groups])
        first = np.concatenate([nxt, self.first_byte[s.ext.last]])
        logm = by_first_byte(first, np.concatenate([s.cs.logq[cross], s.ext.logq]))
        logm[END] = s.canon_logq + lse(s.row[self.specials])  # the text is exactly data
        s.log_mass = lse(logm)
        s.dist = np.exp(logm - s.log_mass) if np.isfinite(s.log_mass) else np.zeros(END + 1)

    def advance(self, s: State, b: int) -> State:
        """The state after byte `b`: the covers that continue with b, and the new covers whose
        last token starts with b. Its row costs one model call, made by next_distributions."""
        if s.ext is None:
            self.next_distributions([s])
        assert s.ext is not None
        cross, nxt = self._crossing(s)
        keep = np.zeros(len(s.cs), bool)
        keep[np.flatnonzero(cross)[nxt == b]] = True
        cs = s.cs.subset(keep) + s.ext.subset(self.first_byte[s.ext.last] == b)
        x = s.data + bytes([b])
        return State(x, s.cut, s.prefix, cs, tuple(self.tok.encode(x[s.cut :])))

    def prob_of_prefix(
        self, x: bytes, context: Sequence[int] = (), cut: int | None = None
    ) -> float:
        """P(the text after `context` starts with x) = P(head) * sum over covers of P(cover)."""
        s = self.start(x, context, cut)
        head = s.prefix[len(context) :]
        rows = self.scorer.rows(tuple(context), [head])
        return math.exp(along(rows, head) + s.logq)

    def next_byte_distribution(
        self, x: bytes, context: Sequence[int] = (), cut: int | None = None
    ) -> np.ndarray:
        """(257,) P(next byte | x); index 256 (END) is the mass of special tokens after x."""
        return self.next_distributions([self.start(x, context, cut)])[0]

    def covers(self, x: bytes, cut: int | None = None) -> list[Ids]:
        """The cover encodings of x, as whole id sequences (head included)."""
        s = self.start(x, (), cut)
        return [(*s.prefix, *c.ids) for c in s.covers]

    def _collapsed(self, s: State, eps: float) -> Cover | None:
        """The cover holding at least 1 - eps of the mass, if any: the boundary is healed."""
        if not len(s.cs):
            return None
        top = s.cs.cover(int(np.argmax(s.cs.logq)))
        return top if eps >= 1.0 or top.logq >= s.logq + math.log1p(-eps) else None

    def complete_bytes(
        self,
        prompt: bytes,
        stop: Callable[[bytes], bool],
        max_bytes: int = 256,
        context: Sequence[int] = (),
        eps: float = 1e-3,
        max_byte_steps: int = 16,
        max_tokens: int = 64,
        max_prefix: int = 0,
        check: Callable[[], None] | None = None,
        width: int = 1,
    ) -> bytes:
        """Greedy continuation of `prompt`: byte by byte over exact next-byte distributions
        until one cover holds 1 - eps of the mass (or after `max_byte_steps` bytes), then
        token by token from that cover (with a beam of `width` from there when it is over
        1: `_token_beam`). `eps` = 0 never leaves byte mode. Stops at END, when
        `stop(output)` is true, or at `max_bytes`; `check()` runs before every step (a
        cancellation hook that raises)."""
        s, out = self.start(prompt, context, max_prefix=max_prefix), b""
        while len(out) < max_bytes:
            if check is not None:
                check()
            top = self._collapsed(s, eps if len(out) < max_byte_steps else 1.0) if eps > 0 else None
            if top is not None:
                return self._token_mode(s, top, out, stop, max_bytes, max_tokens, check, width)
            d = self.next_distributions([s])[0]
            b = int(np.argmax(d))
            if d[b] <= 0 or b == END:
                break
            out += bytes([b])
            if stop(out):
                break
            s = self.advance(s, b)
        return out

    def _token_mode(
        self,
        s: State,
        c: Cover,
        out: bytes,
        stop: Callable[[bytes], bool],
        max_bytes: int,
        max_tokens: int,
        check: Callable[[], None] | None,
        width: int = 1,
    ) -> bytes:
        out += self.tok.token_bytes[c.ids[-1]][len(s.data) - c.start :]
        if stop(out) or len(out) >= max_bytes:
            return out[:max_bytes]
        if width > 1:
            return self._token_beam(s.prefix, c.ids, out, stop, max_bytes, max_tokens, check, width)
        stream = self.scorer.stream(s.prefix, c.ids)
        for _ in range(max_tokens):
            if check is not None:
                check()
            t = int(np.argmax(stream.row))
            if not self.tok.token_bytes[t] or not np.isfinite(stream.row[t]):
                break
            out += self.tok.token_bytes[t]
            if stop(out) or len(out) >= max_bytes or stream.room <= 0:
                break
            stream.push(t)
        return out[:max_bytes]

    def _token_beam(
        self,
        prefix: Ids,
        ids: Ids,
        out: bytes,
        stop: Callable[[bytes], bool],
        max_bytes: int,
        max_tokens: int,
        check: Callable[[], None] | None,
        width: int,
    ) -> bytes:
        """`_token_mode` with a beam: the likeliest continuation of `out` (sum of token
        log-probs after prefix + ids) that `width` branches find, each branch's rows from
        the scorer's tails after `prefix`, one batched call per token. A finished branch's
        score only falls as a live one goes on, so the search stops once no live branch
        scores above the best finished one."""
        live: list[tuple[float, Ids, bytes]] = [(0.0, ids, out)]
        done: list[tuple[float, bytes]] = []
        for _ in range(max_tokens):
            if check is not None:
                check()
            rows = self.scorer.rows(prefix, [tail for _, tail, _ in live])
            branches = []
            for score, i, t, _ in best_extensions(
                [rows[tail] for _, tail, _ in live], [score for score, _, _ in live], width
            ):
                _, tail, text = live[i]
                piece = self.tok.token_bytes[t]
                grown = text + piece
                if not piece:  # a special token: the text ends here
                    done.append((score, text))
                elif stop(grown) or len(grown) >= max_bytes:
                    done.append((score, grown[:max_bytes]))
                else:
                    branches.append((score, (*tail, t), grown))
            best = max((score for score, _ in done), default=-math.inf)
            live = [b for b in branches if b[0] > best]
            if not live:
                break
        else:
            done += [(score, text) for score, _, text in live]  # out of tokens
        return max(done, key=lambda d: d[0])[1] if done else out

    def complete_identifier(
        self,
        prefix: bytes,
        k: int = 10,
        context: Sequence[int] = (),
        beam: int = 8,
        max_bytes: int = 32,
        max_prefix: int = 0,
        check: Callable[[], None] | None = None,
        blend: Blend | None = None,
    ) -> list[tuple[bytes, float]]:
        """The k most probable continuations y of the identifier at the end of `prefix`, with
        P(y, then a non-identifier byte or END | prefix): a byte-level beam search, one
        batched model call per byte. y = b"" (the identifier is complete) is included when
        `prefix` ends with an identifier byte. `blend(y, d)` replaces each next-byte
        distribution d after y (ensembling: `with_strings`)."""
        beams = [(b"", 0.0, self.start(prefix, context, max_prefix=max_prefix))]
        in_word = bool(prefix) and prefix[-1] in WORD_BYTES
        word_bytes = np.asarray([b in WORD_BYTES for b in range(END + 1)])
        done: dict[bytes, float] = {}
        for _ in range(max_bytes + 1):
            if check is not None:
                check()
            expansions = []
            for (y, lp, s), d in zip(
                beams, self.next_distributions([b[2] for b in beams]), strict=True
            ):
                if blend is not None:
                    d = blend(y, d)
                word = word_bytes.copy()
                if not y and not in_word:
                    word[ord("0") : ord("9") + 1] = False  # identifiers do not start with a digit
                elif (end := d[~word].sum()) > 0 and _whole_chars(y):
                    done[y] = lp + math.log(end)
                live = np.flatnonzero(word & (d > 0))
                live = live[np.argsort(-d[live], kind="stable")[:beam]]  # at most `beam` survive
                expansions += [(lp + math.log(d[b]), y + bytes([b]), s, int(b)) for b in live]
            expansions.sort(key=lambda e: e[0], reverse=True)
            expansions = [e for e in expansions[:beam] if e[0] > _kth_best(done, k)]
            if not expansions:
                break
            beams = [(y, lp, self.advance(s, b)) for lp, y, s, b in expansions]
        return _top_names(done, k)

    def complete_identifier_healed(
        self,
        prefix: bytes,
        k: int = 10,
        context: Sequence[int] = (),
        beam: int = 8,
        max_bytes: int = 32,
        max_prefix: int = 0,
        check: Callable[[], None] | None = None,
        negligible: float = math.inf,
    ) -> list[tuple[bytes, float]]:
        """`complete_identifier` that leaves byte mode once the boundary is healed: the cover
        encodings of `prefix` (exact, one batched call: `start`) each become a branch of a
        token-level beam, one batched call per token rather than per byte.

        A branch is the cover's tokens and the name bytes they add after `prefix`; each step
        ends names with the tokens that start with a non-identifier byte (or are special),
        inside the tokens that have one later, and goes on with the likeliest tokens made of
        identifier bytes alone. With every branch kept this is the exact sum of
        `complete_identifier` for a model that only generates valid encodings (a real model
        puts a little mass elsewhere, which neither search sees the same way). Branches stop
        once they fall `negligible` nats below the likeliest finished name.
        """
        s = self.start(prefix, context, max_prefix=max_prefix)
        in_word = bool(prefix) and prefix[-1] in WORD_BYTES
        done: dict[bytes, float] = {}

        def end(y: bytes, logp: float) -> None:
            if (y or in_word) and _whole_chars(y) and len(y) <= max_bytes:
                done[y] = float(np.logaddexp(done.get(y, -math.inf), logp))

        tb, cs = self.tok.token_bytes, s.cs
        # each cover's bytes after the prompt ("rest"): where a non-identifier byte ends the
        # name in it, if one does (hundreds of covers at a name's start: arrays, not loops)
        off = len(prefix) - cs.start
        stop = self.non_word_at[cs.last] & (np.arange(self.byte_at.shape[1]) >= off[:, None])
        ends = stop.any(axis=1)
        run = np.where(ends, np.argmax(stop, axis=1), self.size[cs.last]) - off
        logp = cs.logq - s.logq
        keep = run <= max_bytes
        if not in_word:  # a name starts here, not with a digit (nor empty: `end`)
            first = self.byte_at[cs.last, np.minimum(off, self.byte_at.shape[1] - 1)]
            digit = (first >= ord("0")) & (first <= ord("9"))
            keep &= ~(digit & (self.size[cs.last] > off))
        if (empty := keep & ends & (run == 0)).any():  # most ending covers end it at once
            end(b"", lse(logp[empty]))
        for j in np.flatnonzero(keep & ends & (run > 0)):
            end(tb[cs.last[j]][off[j] : off[j] + run[j]], float(logp[j]))
        on = np.flatnonzero(keep & ~ends)
        on = on[np.argsort(-logp[on], kind="stable")[:beam]]
        live: list[tuple[float, Ids, bytes]] = [
            (float(logp[j]), (*cs.heads[cs.head[j]], int(cs.last[j])), tb[cs.last[j]][off[j] :])
            for j in on
        ]
        if not len(cs):  # nothing after the head: the name starts with the next token
            live.append((0.0, (), b""))
        while live:
            if check is not None:
                check()
            rows = self.scorer.rows(s.prefix, [tail for _, tail, _ in live])
            grown = []
            for logp, tail, y in live:
                row = rows[tail]
                start = not y and not in_word
                if not start:
                    end(y, logp + lse(row[self.name_ends]))
                for t in self.name_ends_inside[start]:
                    if np.isfinite(row[t]):
                        end(y + tb[t][: self.word_run[t]], logp + float(row[t]))
                on = np.where(self.name_goes_on[start], row, -np.inf)
                for t in top_k(on, beam):
                    if np.isfinite(on[t]) and len(y) + len(tb[t]) <= max_bytes:
                        grown.append((logp + float(row[t]), (*tail, int(t)), y + tb[t]))
            grown.sort(key=lambda g: g[0], reverse=True)
            kth = _kth_best(done, k)
            if done:
                kth = max(kth, max(done.values()) - negligible)
            live = [g for g in grown[:beam] if g[0] > kth]
        return _top_names(done, k)


def ensemble_next_byte(
    dists: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> np.ndarray:
    """Weighted average of next-byte distributions from models with different vocabularies."""
    w = np.ones(len(dists)) if weights is None else np.asarray(weights, np.float64)
    return np.tensordot(w / w.sum(), np.stack(dists), axes=1)


Blend = Callable[[bytes, np.ndarray], np.ndarray]  # (bytes so far, next-byte dist) -> dist


def strings_next_byte(strings: Sequence[tuple[bytes, float]], y: bytes) -> np.ndarray | None:
    """The next-byte distribution after y of a distribution over whole strings (another
    model's names, in its own vocabulary): the mass of the strings that go on from y, by
    their next byte, and END for y itself. None when no string starts with y."""
    d = np.zeros(END + 1)
    for text, p in strings:
        if text.startswith(y):
            d[text[len(y)] if len(text) > len(y) else END] += p
    total = d.sum()
    return d / total if total > 0 else None


def with_strings(strings: Sequence[tuple[bytes, float]], weight: float) -> Blend:
    """Byte-level ensembling with a distribution over strings: after y, the average of the
    model's next-byte distribution (1 - weight) and the strings' (weight), where some string
    goes on from y; the model's alone where none does."""

    def blend(y: bytes, d: np.ndarray) -> np.ndarray:
        other = strings_next_byte(strings, y)
        return d if other is None else ensemble_next_byte([d, other], [1.0 - weight, weight])

    return blend


def ensemble_complete_bytes(
    models: Sequence[tuple[ByteLevel, Sequence[int]]],
    prompt: bytes,
    stop: Callable[[bytes], bool],
    max_bytes: int = 64,
    weights: Sequence[float] | None = None,
) -> bytes:
    """Greedy bytes from averaged next-byte distributions of (model, context) pairs; stays in
    byte mode throughout, since the models share no token boundary to hand over to."""
    states = [bl.start(prompt, ctx) for bl, ctx in models]
    out = b""
    while len(out) < max_bytes:
        d = ensemble_next_byte(
            [bl.next_distributions([s])[0] for (bl, _), s in zip(models, states, strict=True)],
            weights,
        )
        b = int(np.argmax(d))
        if b == END or d[b] <= 0:
            break
        out += bytes([b])
        if stop(out):
            break
        states = [bl.advance(s, b) for (bl, _), s in zip(models, states, strict=True)]
    return out
