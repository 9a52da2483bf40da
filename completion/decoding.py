"""Decoding over BPE pieces: prompt healing, identifier beam search and greedy line decoding.

A prompt that ends inside a pre-token (`self.assertEq`, or a lone trailing space that the
pre-tokenizer would attach to the next word) is an encoding the model rarely saw. With
healing, the pieces of the last pre-token are taken off the prompt and the first generated
pieces must spell them again ("need"); naive mode keeps the prompt as typed.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from dataclasses import dataclass

import numpy as np

from .runtime import OnnxDecoder
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


def heal(lm: OnnxDecoder, prefix: str, mode: MidTokenMode) -> Prompt:
    """Encode `prefix`; with healing, take the still-growing last pre-token back off."""
    ids = lm.encode(prefix)
    m = TAIL.search(prefix) if mode != "naive" else None
    if not m:
        return Prompt(ids, "")
    # The tail starts a pre-token, so the whole prefix's pieces split there. Encoding the head
    # alone can give other pieces: the pre-tokenizer splits "\n\n" before a word into "\n",
    # "\n", but keeps it whole at the end of a text.
    head_bytes, used, keep = len(prefix[: m.start()].encode("utf-8")), 0, 0
    while keep < len(ids) and used + len(lm.token_bytes[ids[keep]]) <= head_bytes:
        used += len(lm.token_bytes[ids[keep]])
        keep += 1
    return Prompt(ids[:keep], prefix[m.start() :])


def allowed_for_need(vocab: Vocab, rest: str) -> np.ndarray:
    """Pieces consistent with the text still to spell: a prefix of it, or it plus word chars."""
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


WINDOW_STEP = 64  # the prompt window's start moves in jumps of this many tokens


def _fit(ids: list[int], budget: int) -> list[int]:
    """At most `budget` of the last ids, starting on a multiple of WINDOW_STEP.

    A start that stays put while the user types keeps the prompt's beginning (and with it
    the cached keys/values, whose positions are absolute) the same from one request to the
    next.
    """
    if len(ids) <= budget:
        return ids
    drop = -(-(len(ids) - budget) // WINDOW_STEP) * WINDOW_STEP
    return ids[drop:]


class PrefixCache:
    """The key/value cache of the last prompt: the next prompt runs only its new tokens."""

    def __init__(self, lm: OnnxDecoder) -> None:
        self.lm = lm
        self._ids: list[int] = []
        self._past: np.ndarray | None = None
        self._lock = threading.Lock()

    def prefill(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Next-token log-probs after `ids` (1, V) and the cache of `ids`."""
        with self._lock:
            n = 0
            limit = min(len(self._ids), len(ids) - 1)  # the last id always runs: its logits
            while n < limit and self._ids[n] == ids[n]:
                n += 1
            if self._past is not None and n > 0:
                past = np.ascontiguousarray(self._past[:, :, :, :, :n])
                logp, present = self.lm.step(np.asarray([ids[n:]]), past)
            else:
                logp, present = self.lm.step(np.asarray([ids]), self.lm.empty_past(1))
            self._ids, self._past = list(ids), present
            return logp, present


def _prefill(
    lm: OnnxDecoder, ids: list[int], cache: PrefixCache | None
) -> tuple[np.ndarray, np.ndarray]:
    if cache is not None and cache.lm is lm:
        return cache.prefill(ids)
    return lm.step(np.asarray([ids]), lm.empty_past(1))


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
    """Identifiers that continue `prompt` (after spelling `need`), best first.

    Each beam spells `need` first, then whole-word pieces; a beam ends where the model puts
    its mass on a piece that does not continue an identifier, and that mass is its score.
    """
    ids = _fit(prompt.ids, lm.block_size - max_steps - 1) or [lm.eot_token]
    logp, past = _prefill(lm, ids, cache)
    # each beam: (generated text, cumulative logp); all share the same length
    beams: list[tuple[str, float]] = [("", 0.0)]
    done: dict[str, float] = {}
    for depth in range(max_steps + 1):
        if cancel is not None:
            cancel.check()
        expansions: list[tuple[float, int, int, str]] = []
        for b, (text, score) in enumerate(beams):
            row = logp[b]
            if len(text) < len(prompt.need):
                mask = allowed_for_need(vocab, prompt.need[len(text) :])
            else:
                cont = text[len(prompt.need) :]  # what follows the typed part
                ident = prompt.need.lstrip() + cont
                if WORD.fullmatch(ident) and not ident[0].isdigit():  # a name, not a number
                    end = np.logaddexp.reduce(row[vocab.ends_word])
                    done[cont] = float(np.logaddexp(done.get(cont, -math.inf), score + end))
                mask = vocab.is_word
            if depth == max_steps:
                continue  # the last round only scores where the final beams end
            cand = np.flatnonzero(mask)
            if len(cand) == 0:
                continue
            best = cand[np.argsort(row[cand])[::-1][:beam]]
            expansions += [(score + float(row[t]), b, int(t), text + vocab.texts[t]) for t in best]
        if not expansions:
            break
        expansions.sort(key=lambda e: e[0], reverse=True)
        expansions = expansions[:beam]
        worst_done = sorted(done.values(), reverse=True)[top - 1] if len(done) >= top else -math.inf
        if expansions[0][0] < worst_done:
            break  # no unfinished beam can still enter the top list
        rows = np.asarray([e[1] for e in expansions])
        past = np.take(past, rows, axis=2)
        beams = [(e[3], e[0]) for e in expansions]
        logp, past = lm.step(np.asarray([[e[2]] for e in expansions]), past)
    out = [Candidate(w, s) for w, s in done.items()]
    out.sort(key=lambda c: c.logp, reverse=True)
    return out[:top]


def score_words(
    lm: OnnxDecoder,
    vocab: Vocab,
    prompt: Prompt,
    continuations: list[str],
    cancel: CancelToken | None = None,
    cache: PrefixCache | None = None,
) -> list[Candidate]:
    """Teacher-forced log P(need + continuation, then the identifier ends | prompt).

    Scores names the beam may have missed (the file's own identifiers) with the same
    quantity the beam computes, in one batched call over the prompt's cache.
    """
    seqs = [lm.encode(prompt.need + c) for c in continuations]
    keep = [(c, s) for c, s in zip(continuations, seqs, strict=True) if s]
    if not keep:
        return []
    width = max(len(s) for _, s in keep)
    ids = _fit(prompt.ids, lm.block_size - width - 1) or [lm.eot_token]
    first, past = _prefill(lm, ids, cache)
    if cancel is not None:
        cancel.check()
    batch = np.full((len(keep), width), lm.eot_token, dtype=np.int64)
    for row, (_, seq) in enumerate(keep):
        batch[row, : len(seq)] = seq  # right padding: causal attention never looks at it
    tiled = np.ascontiguousarray(np.repeat(past, len(keep), axis=2))
    logp = lm.step_all(batch, tiled)  # (B, T, V): the piece after each position
    out = []
    for row, (cont, seq) in enumerate(keep):
        score = float(first[0, seq[0]]) + sum(
            float(logp[row, k - 1, seq[k]]) for k in range(1, len(seq))
        )
        end = float(np.logaddexp.reduce(logp[row, len(seq) - 1][vocab.ends_word]))
        out.append(Candidate(cont, score + end))
    return out


def looping(ids: list[int], k: int = 4) -> bool:
    """True when the last `k` ids already occurred earlier: greedy decoding entered a loop."""
    if len(ids) < 2 * k:
        return False
    tail = ids[-k:]
    return any(ids[i : i + k] == tail for i in range(len(ids) - k))


class LineState:
    """Greedy line decoding one token at a time: the choice and the stop rules, no model.

    `push(row)` takes the log-probs of the next token and returns the chosen token, or None
    when decoding stops. Plain greedy decoding and Token Recycling both drive it, so they
    stop at the same places by construction.
    """

    def __init__(self, vocab: Vocab, need: str, max_tokens: int) -> None:
        self.vocab, self.need, self.max_tokens = vocab, need, max_tokens
        self.pieces: list[str] = []
        self.ids: list[int] = []
        self.total = 0.0
        self.spelled = 0
        self.done = max_tokens <= 0

    def push(self, row: np.ndarray) -> int | None:
        """Choose the next token from `row` (V,), or stop; None once decoding has stopped."""
        if self.done:
            return None
        if self.spelled < len(self.need):
            row = np.where(allowed_for_need(self.vocab, self.need[self.spelled :]), row, -np.inf)
        t = int(np.argmax(row))
        if self.vocab.special[t] or not np.isfinite(row[t]):
            self.done = True
            return None
        self.pieces.append(self.vocab.texts[t])
        self.spelled += len(self.pieces[-1])
        self.ids.append(t)
        self.total += float(row[t])
        if looping(self.ids):
            del self.pieces[-4:]
            self.done = True
        elif self.spelled > len(self.need) and "\n" in "".join(self.pieces)[len(self.need) :]:
            self.done = True
        elif len(self.ids) >= self.max_tokens:
            self.done = True
        return t

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
    ids = _fit(prompt.ids, lm.block_size - max_tokens - 1) or [lm.eot_token]
    logp, past = _prefill(lm, ids, cache)
    state = LineState(vocab, prompt.need, max_tokens)
    while True:
        if cancel is not None:
            cancel.check()
        t = state.push(logp[0])
        if t is None or state.done:
            break
        logp, past = lm.step(np.asarray([[t]]), past)
    return state.result()


def fim_prompt(lm: OnnxDecoder, prompt: Prompt, suffix: str, suffix_tokens: int = 64) -> Prompt:
    """Prefix-suffix-middle: the code after the cursor is in view while the middle is decoded."""
    if not suffix.strip():
        return prompt
    fp, fs, fm = lm.fim_ids
    suf = lm.encode(suffix)[:suffix_tokens]
    budget = lm.block_size - len(suf) - 3 - 64
    return Prompt([fp, *_fit(prompt.ids, budget), fs, *suf, fm], prompt.need)
