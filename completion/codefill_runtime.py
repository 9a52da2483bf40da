"""A released CodeFill model on onnxruntime: next-name candidates and statement completion.

The prompt is the text before the cursor as the two CodeFill streams (names and syntax
types, made by the same code as the training data). Candidates are identifiers of the name
vocabulary, those that start with the partial identifier typed so far; the top 10 that
name something declared in the file are re-ranked by DESIGN.md's table (the engine's RERANK).
"""

from __future__ import annotations

import bisect
import json
import keyword
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import (
    Fail,
    InvalidArgument,
    InvalidProtobuf,
    NoSuchFile,
)

from . import runtime
from .codefill_streams import EOS, EOT, SPECIALS, TYPE_ID, Vocab, encode_types, streams
from .context import build_context
from .declarations import Declaration
from .documents import Document
from .runtime import run_cached
from .types import CancelToken, EngineError, Position

RERANK_TOP = 10  # CodeFill re-ranks its top-10 candidates
WINDOW_CHARS = 6000  # text lexed before the cursor: block_size names need about 2000
CHAR_STRIDE = 2000  # the lexed text starts on a grid, so it stays put while the user types
TOKEN_STRIDE = 64  # so does the first name of the prompt: the cached keys/values stay valid
WARM_CHUNK = 64  # names per call when warming the cache ahead of a request
# Lexed texts kept (`CodeFillRuntime._streams`): the idle work asks for the text at the cursor
# and after each keystroke it guesses, and the next idle work starts from one of those.
ENCODED_KEPT = 4


@dataclass(frozen=True)
class Candidate:
    """A next-name candidate: its re-ranked score and the model's own probability."""

    name: str
    score: float
    probability: float
    declared: Declaration | None = None


@dataclass
class CodeFillResult:
    """Candidates for one cursor, and whether it is a cardinal point (worth offering them)."""

    candidates: list[Candidate] = field(default_factory=list)
    cardinal: bool = False
    partial: str = ""


def window(prefix: str, chars: int = WINDOW_CHARS, stride: int = CHAR_STRIDE) -> str:
    """The end of `prefix` from a line that starts a top-level statement, at least `chars`
    long, searched from a multiple of `stride`.

    Lexing the whole file on every request costs more than the model call; a cut at an
    unindented line keeps the indentation that tokenize sees consistent.
    """
    if len(prefix) <= chars:
        return prefix
    at = (len(prefix) - chars) // stride * stride
    while True:
        at = prefix.find("\n", at)
        if at < 0 or at + 1 >= len(prefix):
            return prefix  # no top-level line in the window: lex all of it
        nxt = prefix[at + 1]
        if not nxt.isspace() and nxt != "#":
            return prefix[at + 1 :]
        at += 1


def _common_start(
    names_a: np.ndarray, types_a: np.ndarray, names_b: np.ndarray, types_b: np.ndarray, limit: int
) -> int:
    """How many leading (name, type) pairs two (1, T) prompts share, at most `limit`."""
    same = min(limit, names_a.shape[1], names_b.shape[1])
    differ = (names_a[0, :same] != names_b[0, :same]) | (types_a[0, :same] != types_b[0, :same])
    return int(np.argmax(differ)) if differ.any() else same


def _window_start(n: int, keep: int) -> int:
    """Where a prompt of `n` names starts so as to keep at most `keep`: on a grid of
    TOKEN_STRIDE names."""
    return 0 if n <= keep else ((n - keep) // TOKEN_STRIDE + 1) * TOKEN_STRIDE


def _rerank_table() -> dict[str, dict[str, float]]:
    # Imported when used: the engine may import this module.
    from .engine import RERANK

    return RERANK


class CodeFillRuntime:
    """One released CodeFill model folder: model.onnx, vocab.json, config.json."""

    def __init__(self, folder: Path, threads: int = 2) -> None:
        folder = Path(folder)
        try:
            cfg = json.loads((folder / "config.json").read_text())
            self.vocab = Vocab.from_file(folder / "vocab.json")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.enable_cpu_mem_arena = False  # as the decoder's (runtime.OnnxDecoder)
            self.session = ort.InferenceSession(
                str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"]
            )
        except (
            OSError,
            ValueError,
            KeyError,
            Fail,
            InvalidArgument,
            InvalidProtobuf,
            NoSuchFile,
        ) as exc:
            raise EngineError(f"cannot load the CodeFill model in {folder}: {exc}") from exc
        self.names_only = bool(cfg.get("names_only", False))
        self.block_size = int(cfg["block_size"])
        self.layers = (1 if self.names_only else 2) * cfg["n_layer"]
        self.n_head, self.head_dim = cfg["n_head"], cfg["n_embd"] // cfg["n_head"]
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._heads = dict.fromkeys(n for n in self.outputs if n.endswith("_logits"))
        names = self.vocab.names
        specials = set(SPECIALS)
        self.identifier = np.array(
            [n.isidentifier() and not keyword.iskeyword(n) and n not in specials for n in names]
        )
        self._names = np.array(names, dtype=object)
        # names in sorted order: those that start with a typed part are one run (bisect)
        self._order = np.asarray(sorted(range(len(names)), key=names.__getitem__), np.int64)
        self._sorted = [names[i] for i in self._order]
        self.eos, self.eot = self.vocab.ids[EOS], self.vocab.ids[EOT]
        empty = np.zeros((1, 0), np.int64)
        # the last prompt: names, types, its cache, and the logits after its last name
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray, tuple | None] = (
            empty,
            empty,
            self.empty_past(),
            None,
        )
        # the window that prompts move to next (`warm` ahead): names, types and their cache
        self._ahead: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._encoded: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self.names_run = 0  # names that went through the model, the cached ones not counted

    def empty_past(self) -> np.ndarray:
        """A cache of length 0 for one sequence."""
        return np.zeros((self.layers, 2, 1, self.n_head, 0, self.head_dim), np.float32)

    def encode(self, prefix: str, room: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Name and type ids (1, T) of the text before a cursor, at most block_size - room.

        The prompt starts on a grid of TOKEN_STRIDE names, so successive requests share
        their beginning (and cache) until the cursor has moved on by a stride.
        """
        names, types = self._streams(prefix)
        start = _window_start(len(names), self.block_size - room)
        return names[None, start:], types[None, start:]

    def ahead(self, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
        """`encode`'s window once TOKEN_STRIDE more names are typed after `prefix`, where it
        moves by then (None where it does not): as far as the text goes, its prompt."""
        names, types = self._streams(prefix)
        if len(names) + TOKEN_STRIDE <= self.block_size:
            return None
        start = _window_start(len(names), self.block_size) + TOKEN_STRIDE
        return (names[None, start:], types[None, start:]) if start < len(names) else None

    def _streams(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """Name and type ids (T,) of all the text lexed before a cursor (`window`), kept for
        the last ENCODED_KEPT texts."""
        with self._lock:
            if (kept := self._encoded.get(prefix)) is not None:
                self._encoded.move_to_end(prefix)
                return kept
        names, types = streams(window(prefix), prefix=True)
        if not names:  # an empty file: start from the end-of-text separator
            out = np.asarray([self.eot], np.int64), np.asarray([TYPE_ID["EOT"]], np.int64)
        else:
            out = (
                np.asarray(self.vocab.encode(names), np.int64),
                np.asarray(encode_types(types), np.int64),
            )
        with self._lock:
            self._encoded[prefix] = out
            while len(self._encoded) > ENCODED_KEPT:
                self._encoded.popitem(last=False)
        return out

    def prompt(
        self, names: np.ndarray, types: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """`run` over a whole prompt, reusing the cache of the previous prompt's common start.

        Logits come for the last name only (1, 1, ·); the same prompt again returns them
        without running anything.
        """
        with self._lock:
            cached_n, cached_t, cached_past, last = self._cache
        if last is not None and np.array_equal(cached_n, names) and np.array_equal(cached_t, types):
            return last[0], last[1], cached_past
        n = names.shape[1]
        common, cached_past, ahead = self._longest_kept(names, types, n - 1)  # the last one runs
        used_ahead = ahead is not None and n > ahead[0].shape[1]
        past = cached_past[:, :, :, :, :common] if common else self.empty_past()
        name_logits, type_logits, present = self.run(
            names[:, common:], types[:, common:], np.ascontiguousarray(past), last=1
        )
        self.names_run += n - common
        name_logits = name_logits[:, -1:]
        type_logits = None if type_logits is None else type_logits[:, -1:]
        with self._lock:
            self._cache = (names, types, present, (name_logits, type_logits))
            if used_ahead and self._ahead is ahead:
                self._ahead = None  # all its keys/values are this prompt's now
        return name_logits, type_logits, present

    def _longest_kept(
        self, names: np.ndarray, types: np.ndarray, limit: int
    ) -> tuple[int, np.ndarray, tuple | None]:
        """The longest start of a prompt (at most `limit` names) that a kept cache holds:
        its length, that cache's keys/values, and the window run ahead when it is that one
        (the window has moved to it)."""
        with self._lock:
            cached_n, cached_t, cached_past, _ = self._cache
            ahead = self._ahead
        common = _common_start(cached_n, cached_t, names, types, limit)
        if ahead is not None and (moved := _common_start(*ahead[:2], names, types, limit)) > common:
            return moved, ahead[2], ahead
        return common, cached_past, None

    def warm(self, prefix: str, cancel: CancelToken | None = None, ahead: bool = False) -> int:
        """Run the prompt a request after `prefix` would use, a chunk of names at a time
        (checking `cancel` between chunks); returns the names run.

        `ahead`: instead, the window the prompts move to next (`ahead`), into a slot of its
        own: when the window moves, a request then runs the names typed since, not the
        whole window again (positions are absolute: moving it changes every key).
        """
        if ahead:
            return self._warm_ahead(prefix, cancel)
        before = self.names_run
        self._fill(*self.encode(prefix), cancel)
        return self.names_run - before

    def _fill(
        self, names: np.ndarray, types: np.ndarray, cancel: CancelToken | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """`prompt`, with the names no kept cache holds run WARM_CHUNK at a time and `cancel`
        checked between calls: work cut short by a request holds it up for one chunk at
        most, and what ran stays kept."""
        if cancel is None:
            return self.prompt(names, types)
        n = names.shape[1]
        return runtime.in_chunks(
            lambda end: self.prompt(names[:, :end], types[:, :end]),
            self._longest_kept(names, types, n)[0],
            n,
            WARM_CHUNK,
            cancel.check,
        )

    def _warm_ahead(self, prefix: str, cancel: CancelToken | None) -> int:
        if (target := self.ahead(prefix)) is None:
            return 0
        names, types = target
        with self._lock:
            slot = self._ahead
        done = 0 if slot is None else _common_start(*slot[:2], names, types, names.shape[1])
        past = self.empty_past() if slot is None else slot[2][:, :, :, :, :done]
        for a in range(done, names.shape[1], WARM_CHUNK):
            b = min(a + WARM_CHUNK, names.shape[1])
            past = self.run(names[:, a:b], types[:, a:b], np.ascontiguousarray(past), last=1)[2]
            self.names_run += b - a
            with self._lock:
                self._ahead = (names[:, :b], types[:, :b], past)
            if cancel is not None:
                cancel.check()
        return names.shape[1] - done

    def run(
        self, names: np.ndarray, types: np.ndarray, past: np.ndarray, last: int | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Name logits (1, T, N), type logits (1, T, K) or None, and the new cache; with
        `last`, logits for the last `last` names only, where the graph can do that."""
        if last is not None and names.shape[1] > runtime.PREFILL_CHUNK:
            # a long prompt: the cache in chunks, as the decoder's, then the last chunk with
            # its logits (the graph returns the last position's)
            cut = (names.shape[1] - 1) // runtime.PREFILL_CHUNK * runtime.PREFILL_CHUNK
            for a in range(0, cut, runtime.PREFILL_CHUNK):
                b = a + runtime.PREFILL_CHUNK
                past = self.run(names[:, a:b], types[:, a:b], past, last=1)[2]
            return self.run(names[:, cut:], types[:, cut:], past, last=last)
        feed = {"names": names, "types": types, "past": past}
        feed["last_n"] = np.asarray([last or names.shape[1]], np.int64)
        feed = {k: v for k, v in feed.items() if k in self.inputs}
        if "past" not in self.inputs:  # one cache tensor per layer and kind
            got, present = run_cached(self.session, feed, past, names.shape[1], self._heads)
            out = dict(zip(self._heads, got, strict=True)) | {"present": present}
        else:
            out = dict(zip(self.outputs, runtime.run_graph(self.session, feed), strict=True))
        return out["name_logits"], out.get("type_logits"), out["present"]

    def next_names(
        self,
        prefix: str,
        partial: str = "",
        scopes: dict[str, Declaration] | None = None,
        k: int = 10,
        file_names: dict[str, int] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Candidate]:
        """Top-k identifiers to follow `prefix` (which ends before the partial identifier).

        `file_names` (identifier -> count in the file) lets names the vocabulary lacks share
        the probability of <unk> in proportion to their counts: a held-out package's own
        names are mostly outside the training vocabulary. `cancel` is checked before the
        model runs and between the chunks of a long new part of the prompt.
        """
        encoded = self.encode(prefix)
        if cancel is not None:
            cancel.check()
        logits = self._fill(*encoded, cancel)[0][0, -1].astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        allowed = self.identifier
        if partial:
            lo = bisect.bisect_left(self._sorted, partial)
            hi = bisect.bisect_left(self._sorted, partial + "\U0010ffff")
            starts = np.zeros(len(self._sorted), bool)
            starts[self._order[lo:hi]] = True
            allowed = allowed & starts
        masked = np.where(allowed, probs, -1.0)
        top = np.argsort(-masked)[: max(k, RERANK_TOP)]
        ranked = [(str(self._names[i]), float(probs[i])) for i in top if masked[i] >= 0]
        unknown = {
            n: c
            for n, c in (file_names or {}).items()
            if n not in self.vocab.ids and n.startswith(partial) and n != partial
        }
        if unknown:
            p_unk, total = float(probs[self.vocab.unk]), sum(unknown.values())
            ranked += [(n, p_unk * c / total) for n, c in unknown.items()]
            ranked.sort(key=lambda pair: -pair[1])
        table, scopes = _rerank_table(), scopes or {}
        out = []
        for rank, (name, p) in enumerate(ranked[: max(k, RERANK_TOP)]):
            decl = scopes.get(name)
            weight = table[decl.role][decl.where] if decl and rank < RERANK_TOP else 1.0
            out.append(Candidate(name, p * weight, p, decl))
        out.sort(key=lambda c: -c.score)
        return out[:k]

    def complete(self, doc: Document, pos: Position, k: int = 10) -> CodeFillResult:
        """Candidates at a cursor of a document: nothing inside a string or a comment."""
        ctx = build_context(doc, pos)
        if ctx.in_string_or_comment:
            return CodeFillResult([], False, ctx.partial)
        prefix = doc.text[: ctx.offset - len(ctx.partial)]
        found = self.next_names(prefix, ctx.partial, ctx.scopes, k, ctx.identifiers)
        return CodeFillResult(found, ctx.cardinal, ctx.partial)

    def statement(self, prefix: str, max_names: int = 16) -> list[str]:
        """Greedy names from the cursor to the end of the statement (<EOS> not included).

        Each chosen name is fed back with the type the type decoder predicted for it.
        """
        name_logits, type_logits, past = self.prompt(*self.encode(prefix, room=max_names))
        out: list[str] = []
        while True:
            nxt = int(name_logits[0, -1].argmax())
            if nxt in (self.eos, self.eot):
                break
            out.append(self.vocab.names[nxt])
            if len(out) == max_names:
                break
            typ = 0 if type_logits is None else int(type_logits[0, -1].argmax())
            step = np.asarray([[nxt]], np.int64), np.asarray([[typ]], np.int64)
            name_logits, type_logits, past = self.run(*step, past)
        return out
