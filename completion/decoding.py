"""Decoding over BPE pieces: prompt healing, identifier beam search and greedy line decoding.

A prompt that ends inside a pre-token (`self.assertEq`, or a lone trailing space that the
pre-tokenizer would attach to the next word) is an encoding the model rarely saw. With
healing, the pieces of the last pre-token are taken off the prompt and the first generated
pieces must spell them again ("need"); naive mode keeps the prompt as typed.
"""

from __future__ import annotations

import bisect
import copy
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .bytelevel_base import best_extensions
from .runtime import OnnxDecoder, in_chunks, log_softmax
from .types import CancelToken, MidTokenMode

WORD = re.compile(r"\w+")
# The last pre-token of a prompt, when it may still grow: a word (with its leading space), or
# a whitespace run that the next word would take its leading space from.
TAIL = re.compile(r"(?: ?\w+|\s+)\Z")


@dataclass
class Prompt:
    """Token ids to condition on, and the text the first generated pieces must spell."""

    ids: list[int]
    need: str


@dataclass
class Candidate:
    """An identifier proposed by the model: the text after the typed part, and its log-prob."""

    continuation: str
    logp: float


class Vocab:
    """Per-vocabulary tables used while decoding (computed once per model)."""

    def __init__(self, lm: OnnxDecoder) -> None:
        texts = lm.token_text
        self.texts = texts
        self.by_text = {t: i for i, t in enumerate(texts) if t and i not in lm.special_ids}
        self.is_word = np.array([bool(t) and t.isidentifier() or t.isdigit() for t in texts])
        self.is_word &= np.array([bool(WORD.fullmatch(t)) for t in texts])
        starts_word = np.array([bool(t) and (t[0].isalnum() or t[0] == "_") for t in texts])
        self.ends_word = ~starts_word  # the next piece does not continue an identifier
        self.ends_word[list(lm.special_ids)] = True
        # Sorted texts: the pieces that start with a string are one contiguous run (bisect).
        order = sorted((t, i) for i, t in enumerate(texts) if t and i not in lm.special_ids)
        self.sorted_texts = [t for t, _ in order]
        self.sorted_ids = [i for _, i in order]
        self.special = np.zeros(len(texts), bool)
        self.special[list(lm.special_ids)] = True
        self.starts_line = np.array([t[:1] in ("\n", "\r") and bool(t) for t in texts])
        self.need_masks: dict[str, np.ndarray] = {}  # allowed_for_need's memo


def heal(lm: OnnxDecoder, prefix: str, mode: MidTokenMode) -> Prompt:
    """Encode `prefix`; with healing, take the still-growing last pre-token back off."""
    ids = lm.encode(prefix)
    m = TAIL.search(prefix) if mode != "naive" else None
    if not m:
        return Prompt(ids, "")
    # The tail starts a pre-token, so the whole prefix's pieces split there. Encoding the head
    # alone can give other pieces: the pre-tokenizer splits "\n\n" before a word into "\n",
    # "\n", but keeps it whole at the end of a text.
    # Pieces are taken off the end while they reach past the head (the tail is short).
    head_bytes = len(prefix[: m.start()].encode("utf-8", "replace"))
    used, keep = len(prefix.encode("utf-8", "replace")), len(ids)
    while keep > 0 and used > head_bytes:
        keep -= 1
        used -= len(lm.token_bytes[ids[keep]])
    return Prompt(ids[:keep], prefix[m.start() :])


NEED_MEMO = 512  # masks remembered per vocabulary (the same few needs recur: " ", "self")


def allowed_for_need(vocab: Vocab, rest: str) -> np.ndarray:
    """Pieces consistent with the text still to spell: a prefix of it, or it plus word chars.

    The mask is shared between calls with the same `rest`: read-only.
    """
    mask = vocab.need_masks.get(rest)
    if mask is None:
        if len(vocab.need_masks) >= NEED_MEMO:
            vocab.need_masks.clear()
        mask = vocab.need_masks[rest] = _need_mask(vocab, rest)
        mask.flags.writeable = False
    return mask


def _need_mask(vocab: Vocab, rest: str) -> np.ndarray:
    mask = np.zeros(len(vocab.texts), bool)
    for k in range(1, len(rest) + 1):
        i = vocab.by_text.get(rest[:k])
        if i is not None:
            mask[i] = True
    lo = bisect.bisect_right(vocab.sorted_texts, rest)  # skips `rest` itself
    hi = bisect.bisect_left(vocab.sorted_texts, rest + "\U0010ffff")
    for j in range(lo, hi):
        if WORD.fullmatch(vocab.sorted_texts[j][len(rest) :]):
            mask[vocab.sorted_ids[j]] = True
    return mask


# The prompt window's start moves in jumps of this many tokens (at most half the window):
# each jump re-runs the whole prompt, so longer jumps make that rarer at some cost in context.
WINDOW_STEP = 128


def _fit(ids: list[int], budget: int) -> list[int]:
    """At most `budget` of the last ids, starting on a multiple of the window step.

    A start that stays put while the user types keeps the prompt's beginning (and with it
    the cached keys/values, whose positions are absolute) the same from one request to the
    next.
    """
    if len(ids) <= budget:
        return ids
    step = max(1, min(WINDOW_STEP, budget // 2))
    drop = -(-(len(ids) - budget) // step) * step
    return ids[drop:]


ROOM = 48  # positions kept free after every prompt window for what is generated after it


def _window(lm: OnnxDecoder, ids: list[int], room: int) -> list[int]:
    """The prompt window for `room` generated tokens; the same for every room up to ROOM,
    so completion and inline prompts of one position share their cached keys/values."""
    return _fit(ids, lm.block_size - max(room, ROOM) - 1) or [lm.eot_token]


def longest_start(kept: Sequence[Sequence[int]], ids: Sequence[int]) -> tuple[int, int]:
    """Which of `kept` shares the longest start with `ids` (its index, -1 for none) and that
    length, at most len(ids) - 1: the last id always runs, since its row is needed."""
    best, n = -1, 0
    for k, old in enumerate(kept):
        m, limit = 0, min(len(old), len(ids) - 1)
        while m < limit and old[m] == ids[m]:
            m += 1
        if m > n:
            best, n = k, m
    return best, n


PREFILL_CHUNK = 64  # tokens per call when a cache runs a long new part, checking between


class PrefixCache:
    """Keys/values of the last few prompts: a prompt runs only the tokens after the longest
    start it shares with one of them (completion, inline and fill-in-the-middle prompts)."""

    def __init__(self, lm: OnnxDecoder, entries: int = 3) -> None:
        self.lm, self.entries = lm, entries
        self._kept: list[tuple[list[int], np.ndarray, np.ndarray]] = []  # oldest first
        self._lock = threading.Lock()
        # called with the tokens each prefill runs and their raw logits (N,), (N, V)
        self._watchers: list[Callable[[np.ndarray, np.ndarray], None]] = []

    def watch(self, watcher: Callable[[np.ndarray, np.ndarray], None]) -> None:
        """Have `watcher` see every token this cache runs from now on, with the logits after
        it; the prefills then compute the output head for all their tokens, not the last."""
        with self._lock:
            if watcher not in self._watchers:
                self._watchers.append(watcher)

    def unwatch(self, watcher: Callable[[np.ndarray, np.ndarray], None]) -> None:
        """Stop showing `watcher` the tokens run (the prefills go back to the last logits)."""
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def _run(self, ids: list[int], past: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-probs after the last of `ids` (1, V) and the cache, `ids` run after `past`."""
        if not self._watchers:
            return self.lm.step(np.asarray([ids]), past)
        logits, present = self.lm.run(np.asarray([ids]), past)
        for watcher in self._watchers:
            watcher(np.asarray(ids, np.int64), logits[0])
        return log_softmax(logits[:, -1, :]), present

    def _longest(self, ids: list[int]) -> tuple[int, int]:
        """`longest_start` among the kept prompts; called with the lock held."""
        return longest_start([kept for kept, _, _ in self._kept], ids)

    def cached(self, ids: list[int]) -> int:
        """How many of `ids` a prefill would not have to run."""
        with self._lock:
            if any(kept == ids for kept, _, _ in self._kept):
                return len(ids)
            return self._longest(ids)[1]

    def prefill(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Next-token log-probs after `ids` (1, V) and the cache of `ids`."""
        with self._lock:
            for k, (kept, past, logp) in enumerate(self._kept):
                if kept == ids:  # the same prompt again: nothing to run
                    self._kept.append(self._kept.pop(k))
                    return logp, past
            best, n = self._longest(ids)
            if best >= 0:  # that prompt grows into this one: it is replaced (once this one
                # has run: a call stopped by a cancel keeps it)
                past = np.ascontiguousarray(self._kept[best][1][:, :, :, :, :n])
                logp, present = self._run(ids[n:], past)
                self._kept.pop(best)
            else:
                logp, present = self._run(ids, self.lm.empty_past(1))
                if len(self._kept) >= self.entries:
                    self._kept.pop(0)
            self._kept.append((list(ids), present, logp))
            return logp, present

    def fill(
        self, ids: list[int], cancel: CancelToken | None = None, chunk: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`prefill`, with the part not cached run `chunk` (PREFILL_CHUNK) tokens per call
        and `cancel` checked between calls: work cut short by a request holds it up for one
        chunk at most, and what ran stays kept."""
        return in_chunks(
            lambda end: self.prefill(ids[:end]),
            self.cached(ids),
            len(ids),
            chunk or PREFILL_CHUNK,
            cancel.check if cancel is not None else None,
        )


def warm(
    lm: OnnxDecoder,
    prompt: Prompt,
    cache: PrefixCache,
    cancel: CancelToken | None = None,
    chunk: int = PREFILL_CHUNK,
) -> int:
    """Run the window a request at `prompt` would use into `cache`; returns the tokens run.

    It runs a chunk at a time and checks `cancel` between chunks, so a request that arrives
    meanwhile waits for one chunk at most; the cache keeps whatever was run.
    """
    ids = _window(lm, prompt.ids, ROOM)
    done = cache.cached(ids)
    if done == len(ids):
        return 0
    cache.fill(ids, cancel, chunk)
    return len(ids) - done


def _prefill(
    lm: OnnxDecoder, ids: list[int], cache: PrefixCache | None, cancel: CancelToken | None
) -> tuple[np.ndarray, np.ndarray]:
    """Log-probs after `ids` and their cache: from `cache` where it serves this model (a long
    new part in chunks, checking `cancel` between them), else in one call."""
    if cache is not None and cache.lm is lm:
        return cache.prefill(ids) if cancel is None else cache.fill(ids, cancel)
    return lm.step(np.asarray([ids]), lm.empty_past(1))


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis."""
    m = x.max(axis=-1)
    return m + np.log(np.exp(x - m[..., None]).sum(axis=-1))


class _Branches:
    """Sequences that continue one cached prompt, run side by side in one batch-1 call.

    Each new token sees the prompt and its own branch (a tree mask with explicit positions),
    so the prompt's keys/values are shared instead of copied per branch; tokens of dropped
    branches stay in the cache, hidden by the mask.
    """

    def __init__(self, lm: OnnxDecoder, past: np.ndarray) -> None:
        self.lm, self.past = lm, past
        self.prompt = past.shape[4]

    def run(self, tokens: list[int], sees: list[list[int]], depth: list[int]) -> np.ndarray:
        """Log-probs after each of `tokens` (N, V); token i also sees cache entries `sees[i]`.

        Token i lands at cache entry S + i (S: entries so far) and position prompt + depth[i].
        """
        S, n = self.past.shape[4], len(tokens)
        mask = np.zeros((1, n, S + n), bool)
        mask[0, :, : self.prompt] = True
        for i, entries in enumerate(sees):
            mask[0, i, entries] = True
            mask[0, i, S + i] = True
        pos = (self.prompt + np.asarray(depth, np.int64))[None]
        logits, self.past = self.lm.run(np.asarray([tokens]), self.past, mask, pos)
        return log_softmax(logits[0])


NEGLIGIBLE = math.log(1000)  # nats below the best finished name at which unfinished beams stop
WORD_PIECES = 16  # names longer than this many pieces are not scored from the file


class _Words:
    """Texts to score teacher-forced after a prompt: log P(need + text, then it ends)."""

    def __init__(
        self,
        lm: OnnxDecoder,
        prompt: Prompt,
        continuations: Sequence[str],
        max_pieces: int = WORD_PIECES,
    ) -> None:
        seqs = [lm.encode(prompt.need + c) for c in continuations]
        self.keep = [
            (c, s) for c, s in zip(continuations, seqs, strict=True) if 0 < len(s) <= max_pieces
        ]

    def layout(self, start: int) -> tuple[list[int], list[list[int]], list[int]]:
        """Tokens, the cache entries each also sees, and depths, for tokens from entry `start`."""
        tokens: list[int] = []
        sees: list[list[int]] = []
        depth: list[int] = []
        for _, seq in self.keep:
            for k, t in enumerate(seq):  # each piece sees the earlier pieces of its name
                sees.append([start + len(tokens) - j for j in range(1, k + 1)])
                tokens.append(t)
                depth.append(k)
        return tokens, sees, depth

    def scores(
        self, first: np.ndarray, rows: np.ndarray, end: Callable[[np.ndarray], float]
    ) -> list[Candidate]:
        """Candidates from the log-probs after the prompt (V,) and after each piece (N, V);
        `end` gives the log-prob that the text ends, from the row after its last piece."""
        out, at = [], 0
        for cont, seq in self.keep:
            row = rows[at : at + len(seq)]
            at += len(seq)
            score = float(first[seq[0]]) + sum(
                float(row[k - 1, seq[k]]) for k in range(1, len(seq))
            )
            out.append(Candidate(cont, score + end(row[len(seq) - 1])))
        return out


def identifier_candidates(
    lm: OnnxDecoder,
    vocab: Vocab,
    prompt: Prompt,
    words: Sequence[str] = (),
    beam: int = 8,
    max_steps: int = 6,
    top: int = 10,
    cancel: CancelToken | None = None,
    cache: PrefixCache | None = None,
) -> tuple[list[Candidate], list[Candidate]]:
    """The beam's identifiers (best first), and `words` scored the way the beam scores.

    Each beam spells `need` first, then whole-word pieces; a beam ends where the model puts
    its mass on a piece that does not continue an identifier, and that mass is its score.
    With a mask input the beams share the prompt's cache, and the words run in the beam's
    first call.
    """
    ids = _window(lm, prompt.ids, max(max_steps, WORD_PIECES))
    logp, past = _prefill(lm, ids, cache, cancel)
    first = logp[0]
    pending = _Words(lm, prompt, words) if words else None
    scored: list[Candidate] = []
    if not lm.tree_inputs:  # a graph without the mask input: one cache copy per beam
        if pending is not None:
            scored = score_words(lm, vocab, prompt, words, cancel, cache)
            pending = None
    branches = _Branches(lm, past) if lm.tree_inputs else None
    # each beam: (generated text, cumulative logp, its cache entries); all share one length
    beams: list[tuple[str, float, list[int]]] = [("", 0.0, [])]
    done: dict[str, float] = {}
    for depth in range(max_steps + 1):
        if cancel is not None:
            cancel.check()
        ends = _logsumexp(logp[:, vocab.ends_word])  # (B,) mass on ending the identifier
        masks = []
        for b, (text, score, _) in enumerate(beams):
            if len(text) < len(prompt.need):
                masks.append(allowed_for_need(vocab, prompt.need[len(text) :]))
                continue
            cont = text[len(prompt.need) :]  # what follows the typed part
            ident = prompt.need.lstrip() + cont
            if WORD.fullmatch(ident) and not ident[0].isdigit():  # a name, not a number
                end = score + float(ends[b])
                done[cont] = float(np.logaddexp(done.get(cont, -math.inf), end))
            masks.append(vocab.is_word)
        if depth == max_steps:
            break  # the last round only scores where the final beams end
        scores = np.asarray([score for _, score, _ in beams])[:, None]
        total = np.where(np.asarray(masks), logp + scores, -np.inf)  # (B, V)
        flat = total.ravel()
        k = min(beam, flat.size)
        best = np.argpartition(flat, -k)[-k:]
        best = best[np.argsort(-flat[best], kind="stable")]
        best = best[np.isfinite(flat[best])]
        if len(best) == 0:
            break
        worst_done = sorted(done.values(), reverse=True)[top - 1] if len(done) >= top else -math.inf
        if done:  # a name 1/1000 as likely as the best one barely moves the list
            worst_done = max(worst_done, max(done.values()) - NEGLIGIBLE)
        if flat[best[0]] < worst_done:
            break  # no unfinished beam can still enter the top list
        rows, toks = np.divmod(best, logp.shape[1])
        if branches is not None:
            S, n = branches.past.shape[4], len(toks)
            tokens, sees = [int(t) for t in toks], [beams[r][2] for r in rows]
            depths = [depth] * n
            if pending is not None:  # the words ride along in the first call
                more = pending.layout(S + n)
                tokens, sees, depths = tokens + more[0], sees + more[1], depths + more[2]
            logp = branches.run(tokens, sees, depths)
            if pending is not None:
                scored, pending = pending.scores(first, logp[n:], _word_end(vocab)), None
                logp = logp[:n]
            beams = [
                (beams[r][0] + vocab.texts[t], float(flat[i]), [*beams[r][2], S + j])
                for j, (i, r, t) in enumerate(zip(best, rows, toks, strict=True))
            ]
        else:
            past = np.take(past, rows, axis=2)
            beams = [
                (beams[r][0] + vocab.texts[t], float(flat[i]), [])
                for i, r, t in zip(best, rows, toks, strict=True)
            ]
            logp, past = lm.step(toks[:, None], past)
    if pending is not None and branches is not None and pending.keep:  # the beam made no call
        tokens, sees, depths = pending.layout(branches.past.shape[4])
        scored = pending.scores(first, branches.run(tokens, sees, depths), _word_end(vocab))
    out = [Candidate(w, s) for w, s in done.items()]
    out.sort(key=lambda c: c.logp, reverse=True)
    return out[:top], scored


def beam_identifiers(
    lm: OnnxDecoder,
    vocab: Vocab,
    prompt: Prompt,
    beam: int = 8,
    max_steps: int = 6,
    top: int = 10,
    cancel: CancelToken | None = None,
    cache: PrefixCache | None = None,
) -> list[Candidate]:
    """Identifiers that continue `prompt` (after spelling `need`), best first."""
    return identifier_candidates(lm, vocab, prompt, (), beam, max_steps, top, cancel, cache)[0]


def score_words(
    lm: OnnxDecoder,
    vocab: Vocab,
    prompt: Prompt,
    continuations: Sequence[str],
    cancel: CancelToken | None = None,
    cache: PrefixCache | None = None,
) -> list[Candidate]:
    """Teacher-forced log P(need + continuation, then the identifier ends | prompt).

    Scores names the beam may have missed (the file's own identifiers) with the same
    quantity the beam computes, in one call over the prompt's cache.
    """
    words = _Words(lm, prompt, continuations)
    return _teacher_forced(lm, prompt, words, _word_end(vocab), cancel, cache)


def _word_end(vocab: Vocab) -> Callable[[np.ndarray], float]:
    """log P(the name ends) from the row after its last piece: the mass of every piece that
    cannot continue it."""

    def end(row: np.ndarray) -> float:
        return float(_logsumexp(row[vocab.ends_word]))

    return end


def score_lines(
    lm: OnnxDecoder,
    vocab: Vocab,
    prompt: Prompt,
    rests: Sequence[str],
    max_tokens: int = 48,
    cancel: CancelToken | None = None,
    cache: PrefixCache | None = None,
) -> list[Candidate]:
    """Teacher-forced log P(need + rest, then a line break | prompt) for rests of the line.

    The line ends on its likeliest piece that starts with a line break (the break and the
    next line's indentation are one piece): the beam's finished lines end on one such piece
    too, so the scores compare with the beam's. Rests longer than `max_tokens` are dropped.
    """
    lines = _Words(lm, prompt, rests, max_tokens)

    def end(row: np.ndarray) -> float:
        return float(row[vocab.starts_line].max(initial=-np.inf))

    return _teacher_forced(lm, prompt, lines, end, cancel, cache)


def _teacher_forced(
    lm: OnnxDecoder,
    prompt: Prompt,
    words: _Words,
    end: Callable[[np.ndarray], float],
    cancel: CancelToken | None,
    cache: PrefixCache | None,
) -> list[Candidate]:
    """`words` scored in one call over the prompt's cache, each seeing the prompt and itself."""
    if not words.keep:
        return []
    longest = max(len(s) for _, s in words.keep)
    ids = _window(lm, prompt.ids, max(longest, WORD_PIECES))
    first, past = _prefill(lm, ids, cache, cancel)
    if cancel is not None:
        cancel.check()
    if lm.tree_inputs:  # all side by side, each seeing the prompt and itself
        tokens, sees, depths = words.layout(past.shape[4])
        return words.scores(first[0], _Branches(lm, past).run(tokens, sees, depths), end)
    batch = np.full((len(words.keep), longest), lm.eot_token, dtype=np.int64)
    for row, (_, seq) in enumerate(words.keep):
        batch[row, : len(seq)] = seq  # right padding: causal attention never looks at it
    tiled = np.ascontiguousarray(np.repeat(past, len(words.keep), axis=2))
    logp = lm.step_all(batch, tiled)  # (B, T, V): the piece after each position
    rows = np.concatenate([logp[r, : len(seq)] for r, (_, seq) in enumerate(words.keep)])
    return words.scores(first[0], rows, end)


def looping(ids: list[int], k: int = 4) -> bool:
    """True when the last `k` ids already occurred earlier: greedy decoding entered a loop."""
    if len(ids) < 2 * k:
        return False
    tail = ids[-k:]
    return any(ids[i : i + k] == tail for i in range(len(ids) - k))


class LineState:
    """Line decoding one token at a time: the choice and the stop rules, no model.

    `push(row)` takes the log-probs of the next token and returns the greedy choice, or
    None when decoding stops. Plain greedy decoding and Token Recycling both drive it, so
    they stop at the same places by construction; the line beam drives copies of it through
    `allowed` and `accept`, with the same rules.
    """

    def __init__(self, vocab: Vocab, need: str, max_tokens: int) -> None:
        self.vocab, self.need, self.max_tokens = vocab, need, max_tokens
        self.pieces: list[str] = []
        self.ids: list[int] = []
        self.total = 0.0
        self.score = 0.0  # total, plus the log-prob of the end of text where that ended it
        self.spelled = 0
        self.done = max_tokens <= 0

    def copy(self) -> LineState:
        """An independent state with the same tokens so far (a beam's branch)."""
        other = copy.copy(self)
        other.pieces, other.ids = list(self.pieces), list(self.ids)
        return other

    def allowed(self, row: np.ndarray) -> np.ndarray:
        """`row` with the tokens that cannot come next at -inf (the typed text comes first)."""
        if self.spelled < len(self.need):
            return np.where(allowed_for_need(self.vocab, self.need[self.spelled :]), row, -np.inf)
        return row

    def push(self, row: np.ndarray) -> int | None:
        """Choose the next token from `row` (V,), or stop; None once decoding has stopped."""
        if self.done:
            return None
        row = self.allowed(row)
        t = int(np.argmax(row))
        return t if self.accept(t, float(row[t])) else None

    def accept(self, t: int, logp: float) -> bool:
        """Take token `t` (log-prob `logp`) and apply the stop rules; False when `t` ends the
        text instead (an end-of-text token, or one the model rules out)."""
        if self.vocab.special[t] or not math.isfinite(logp):
            self.done = True
            self.score += logp
            return False
        self.pieces.append(self.vocab.texts[t])
        self.spelled += len(self.pieces[-1])
        self.ids.append(t)
        self.total += logp
        self.score = self.total
        if looping(self.ids):
            del self.pieces[-4:]
            self.done = True
        elif self.spelled > len(self.need) and "\n" in "".join(self.pieces)[len(self.need) :]:
            self.done = True
        elif len(self.ids) >= self.max_tokens:
            self.done = True
        return True

    def result(self) -> tuple[str, float]:
        """(text after `need` up to the end of the line, mean log-prob of the chosen tokens)."""
        text = "".join(self.pieces)
        out = text[len(self.need) :] if len(text) >= len(self.need) else ""
        return out.split("\n", 1)[0], (self.total / len(self.ids) if self.ids else 0.0)


def greedy_line(
    lm: OnnxDecoder,
    vocab: Vocab,
    prompt: Prompt,
    max_tokens: int = 48,
    cancel: CancelToken | None = None,
    cache: PrefixCache | None = None,
) -> tuple[str, float]:
    """Greedy decoding to the end of the line; returns (text after `need`, mean log-prob).

    A small model's greedy output can cycle (`f(f(f(`); decoding stops where the cycle
    starts repeating, since the repeat is what the user would not want.
    """
    ids = _window(lm, prompt.ids, max_tokens)
    logp, past = _prefill(lm, ids, cache, cancel)
    state = LineState(vocab, prompt.need, max_tokens)
    while True:
        if cancel is not None:
            cancel.check()
        t = state.push(logp[0])
        if t is None or state.done:
            break
        logp, past = lm.step(np.asarray([[t]]), past)
    return state.result()


def beam_line(
    lm: OnnxDecoder,
    vocab: Vocab,
    prompt: Prompt,
    width: int = 3,
    max_tokens: int = 48,
    cancel: CancelToken | None = None,
    cache: PrefixCache | None = None,
) -> tuple[str, float]:
    """The likeliest line (sum of log-probs) that a beam of `width` finds; the same stop
    rules and result as `greedy_line`, which is the beam of width 1.

    The branches run in one model call per token, on the prompt's cache shared through a
    tree mask where the graph has one (on 120 held-out lines that made a beam of 3 cost
    about what greedy decoding does; copying the cache per branch cost half as much again).
    A finished line's score only falls as a live branch goes on, so the search stops once
    no live branch scores above the best finished line. On held-out lines a beam of 3
    matched the whole line more often than greedy decoding (docs/evaluation)."""
    ids = _window(lm, prompt.ids, max_tokens)
    logp, past = _prefill(lm, ids, cache, cancel)
    # with a mask input the branches share the prompt's cache (`_Branches`): each branch
    # keeps the cache entries of its own tokens; otherwise each has a copy of the cache
    tree = _Branches(lm, past) if lm.tree_inputs else None
    entries: list[list[int]] = [[]]
    live = [LineState(vocab, prompt.need, max_tokens)]
    done = [s for s in live if s.done]
    live = [s for s in live if not s.done]
    while live:
        if cancel is not None:
            cancel.check()
        rows = [state.allowed(row) for state, row in zip(live, logp, strict=True)]
        branches: list[tuple[int, LineState]] = []
        for _, i, t, lp in best_extensions(rows, [state.total for state in live], width):
            state = live[i].copy()
            if state.accept(t, lp) and not state.done:
                branches.append((i, state))
            else:
                done.append(state)
        best = max((s.score for s in done), default=-math.inf)
        branches = [(i, s) for i, s in branches if s.total > best]
        if not branches:
            break
        live = [s for _, s in branches]
        if tree is not None:
            start = tree.past.shape[4]
            sees = [entries[i] for i, _ in branches]
            logp = tree.run([s.ids[-1] for s in live], sees, [len(s.ids) - 1 for s in live])
            entries = [[*seen, start + j] for j, seen in enumerate(sees)]
        else:
            past = past[:, :, [i for i, _ in branches]]
            logp, past = lm.step(np.asarray([[s.ids[-1]] for s in live]), past)
    if not done:
        return "", 0.0
    return max(done, key=lambda s: s.score).result()


def fim_prompt(lm: OnnxDecoder, prompt: Prompt, suffix: str, suffix_tokens: int = 64) -> Prompt:
    """Suffix-prefix-middle: the code after the cursor is in view while the middle is decoded.

    The prefix comes last, right before the middle, as in the SPM half of the training data:
    the model continues the text it has just read (prefix-suffix-middle left its first guess
    nearly flat: 4% vs 21% exact match on held-out random spans), and while the user types
    only the end of the prompt changes, so the cached keys and values of the rest stay valid.
    """
    if not suffix.strip():
        return prompt
    fp, fs, fm = lm.fim_ids
    suf = lm.encode(suffix)[:suffix_tokens]
    budget = lm.block_size - len(suf) - 3 - 64
    return Prompt([fp, fs, *suf, fm, *_fit(prompt.ids, budget)], prompt.need)
