"""A released decoder on onnxruntime: tokenizer, vocabulary bytes and cached forward steps."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from .types import Cancelled, CancelToken, EngineError

EOT, PAD = "<|endoftext|>", "<|pad|>"
FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE = "<fim_prefix>", "<fim_suffix>", "<fim_middle>"
T = TypeVar("T")

REQUIRED_FILES = ("model.onnx", "tokenizer.json", "config.json")


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: the visible character of each byte -> the byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def causal_inputs(batch: int, past_len: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The mask (B, T, P+T) and position ids (B, T) of plain decoding after a P-token cache."""
    keys = np.arange(past_len + n)[None, :] <= past_len + np.arange(n)[:, None]  # (T, P+T)
    mask = np.broadcast_to(keys, (batch, n, past_len + n))
    pos = np.broadcast_to(np.arange(past_len, past_len + n, dtype=np.int64), (batch, n))
    return np.ascontiguousarray(mask), np.ascontiguousarray(pos)


@dataclass(frozen=True)
class ModelInfo:
    """What the engine reports about a loaded model."""

    name: str
    folder: Path
    parameters: int
    block_size: int


def verify_release(folder: Path) -> dict:
    """Check that the release is complete and its files match the manifest's checksums."""
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise EngineError(f"model folder {folder} lacks {', '.join(missing)}")
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return {}
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EngineError(f"unreadable model manifest {manifest_path}: {exc}") from exc
    files = manifest.get("files", {}) if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise EngineError(f"unreadable model manifest {manifest_path}: no table of files")
    for name, digest in files.items():
        h = hashlib.sha256()
        try:
            with (folder / name).open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            raise EngineError(
                f"cannot read {folder / name} listed in manifest.json: {exc}"
            ) from exc
        if h.hexdigest() != digest:
            raise EngineError(f"{folder / name} does not match its checksum in manifest.json")
    return manifest


M_ARENA_MAX = -8  # glibc's mallopt parameter for the number of malloc arenas
# Arenas for the server's threads (event loop, requests and idle work, CodeFill). Each model
# call returns new cache arrays of a few MiB, made and dropped on those threads, and glibc
# keeps what was freed in each arena. In the benchmark replay (one-off runs, `--no-jedi
# --decoding 0`): one arena for all, peak RSS 279-293 MiB but completion p95 29.6-35.1 ms
# (the threads queue for its lock); an arena per thread, p95 25.0-26.7 ms but 304-332 MiB;
# three arenas with the freed pages given back after each finished idle work
# (`give_back_free_memory`), p95 26.1-29.7 ms at 280-288 MiB.
# A fixed mmap threshold (glibc's MALLOC_MMAP_THRESHOLD_, so that cache arrays above it are
# mapped and unmapped, never kept) was tried against this, in alternating pairs: at 1 MiB the
# peak fell from 283-286 to 257-259 MiB but completion p95 rose from 9.7-13.6 to 19.8-20.0 ms
# and inline p50 from 2.9-3.7 to 8.2-10.4 ms (every new cache array faults its pages in);
# at 4 MiB, 266-277 against 275-285 MiB for p95 13.6-18.6 against 10.5 ms. Not kept. Nor
# were a 32 MiB mmap threshold with an 8 MiB trim threshold (the top of each arena given
# back on free once 8 MiB lie unused there): eight pairs, peak 277-291 MiB (mean 281)
# against 280-297 (mean 289), for completion p95 10.2-13.7 ms (median 12.5) against 9.3-14.5
# (median 10.2); with a 16 MiB trim threshold, 285-300 against 289-298 MiB in three pairs.
MALLOC_ARENAS = 3


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose malloc these tune), else None; looked up once
    (`give_back_free_memory` runs after every finished idle work)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """Have glibc's malloc serve all threads from at most `n` arenas; False where it cannot.
    Call it before threads start."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, n))


def resident_mib() -> float | None:
    """This process's resident memory in MiB (Linux's /proc/self/statm); None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def give_back_free_memory(above_mib: float = 0.0) -> bool:
    """Return the heap pages that malloc holds free to the system (glibc's `malloc_trim`,
    about 1.6 ms here) when the resident memory is above `above_mib` (0: always); False
    where it did not, or there is no such call. Pages given back fault in again as the next
    calls allocate."""
    libc = _glibc()
    if libc is None:
        return False
    if above_mib > 0 and (rss := resident_mib()) is not None and rss <= above_mib:
        return False
    libc.malloc_trim(0)
    return True


# The run options of model calls made on each thread inside `stops_with`.
_stoppable = threading.local()


@contextmanager
def stops_with(cancel: CancelToken | None) -> Iterator[None]:
    """Model calls made on this thread inside the block stop within one graph node of
    `cancel` being cancelled (onnxruntime's `RunOptions.terminate`), raising Cancelled,
    instead of running to their end: idle work cut by a keystroke gives the request the
    CPU at once, not after the call under way (a 64-token call: about 8 ms here; stopped
    0.4 ms after the flag). What a stopped call would have returned is lost, never half
    kept: callers keep a call's results only once it has returned."""
    if cancel is None:
        yield
        return
    options = ort.RunOptions()
    stop = functools.partial(setattr, options, "terminate", True)
    cancel.on_cancel(stop)
    outer = getattr(_stoppable, "options", None)
    _stoppable.options = options
    try:
        yield
    finally:
        _stoppable.options = outer
        cancel.forget(stop)


def stopping(cancel: CancelToken | None, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` inside `stops_with(cancel)`: for work handed to another thread."""
    with stops_with(cancel):
        return call(*args)


def _run(call: Callable[[ort.RunOptions | None], T]) -> T:
    """`call` with this thread's run options; a call stopped by them raises Cancelled."""
    options = getattr(_stoppable, "options", None)
    try:
        return call(options)
    except Exception:
        if options is not None and options.terminate:
            raise Cancelled("model call stopped") from None
        raise


def run_graph(session: ort.InferenceSession, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """`session.run` of all outputs, stoppable (`stops_with`)."""
    return _run(functools.partial(session.run, None, feed))


def cache_names(layers: int, kind: str) -> list[str]:
    """Graph names of the per-layer cache tensors: `past_key_0`, `past_value_0`, ... (inputs)
    or `present_...` (outputs), in the order of the stacked cache."""
    return [f"{kind}_{part}_{i}" for i in range(layers) for part in ("key", "value")]


def run_cached(
    session: ort.InferenceSession,
    feed: dict[str, np.ndarray],
    past: np.ndarray,
    new: int,
    heads: dict[str, tuple[int, ...] | None],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Run a graph that takes and returns its cache as one tensor per layer and kind, for a
    caller that keeps it stacked (layers, 2, B, H, P, D): the inputs are views of `past`, and
    the graph writes the new cache (P + `new` long) straight into the array returned.

    `heads`: the other outputs, with their shapes where known (written in place) or None
    (onnxruntime allocates them). Returns them in that order, and the new cache.
    """
    past = np.ascontiguousarray(past, dtype=np.float32)
    present = np.empty((*past.shape[:4], past.shape[4] + new, past.shape[5]), np.float32)
    io = session.io_binding()
    for name, value in feed.items():
        io.bind_cpu_input(name, np.ascontiguousarray(value))
    layers = past.shape[0]
    pairs = zip(cache_names(layers, "past"), cache_names(layers, "present"), strict=True)
    for k, (name, out) in enumerate(pairs):
        io.bind_cpu_input(name, past[k // 2, k % 2])
        buf = present[k // 2, k % 2]
        io.bind_output(out, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
    made: dict[str, np.ndarray] = {}
    for name, shape in heads.items():
        if shape is None:
            io.bind_output(name, "cpu")
        else:
            made[name] = np.empty(shape, np.float32)
            io.bind_output(name, "cpu", 0, np.float32, list(shape), made[name].ctypes.data)
    _run(functools.partial(session.run_with_iobinding, io))
    outs = io.get_outputs()  # in the order bound: the cache, then the heads
    got = [made[n] if n in made else outs[2 * layers + i].numpy() for i, n in enumerate(heads)]
    return got, present


# Causal inputs longer than this run in calls of this many tokens: in one call, attention
# over the whole prompt outgrows the CPU caches. On the shipped decoder a 454-token prompt
# took 50 ms in one call and 26 ms in four; a 326-token one, 20 and 17 ms.
PREFILL_CHUNK = 128


def in_chunks(
    run: Callable[[int], T], done: int, total: int, chunk: int, check: Callable[[], None] | None
) -> T:
    """`run(end)` for the first `end` tokens, growing `chunk` at a time from `done` (tokens
    already run) to `total`, with `check` (a cancellation hook that raises) between calls;
    returns what `run(total)` returns. Work cut short by a request holds it up for one chunk
    at most, and a caller that keeps each call's result keeps what ran."""
    for end in range(done + chunk, total, chunk):
        run(end)
        if check is not None:
            check()
    return run(total)


SHORT_TEXT, SHORT_MEMO = 64, 4096  # texts this short are remembered, this many at most
HEAD_GRID = 2048  # a long text's remembered head ends on the first safe line after a multiple


def split_point(text: str, grid: int = HEAD_GRID) -> int | None:
    """Where `text` can be cut so that its pieces are those of the two parts, encoded apart:
    the start of a line that begins with a non-space, after a line that ends with one.

    The pre-tokenizer's only pattern that looks ahead is whitespace before a non-space, and
    there a lone newline between two non-spaces is one piece either way; nothing else
    crosses a newline. The cut is the first such line at or after the last multiple of
    `grid` that is at least `grid` characters before the end, so it stays put while the
    text grows. None: the text is too short, or has no such line there.
    """
    start = (len(text) - grid) // grid * grid
    if start <= 0:
        return None
    at = text.find("\n", max(start, 1))
    while 0 < at < len(text) - 1:
        if not text[at - 1].isspace() and not text[at + 1].isspace():
            return at + 1
        at = text.find("\n", at + 1)
    return None


class OnnxDecoder:
    """One released decoder: `step(ids, past)` returns next-token log-probs and the new cache."""

    # One intra-op thread: the server's calls are small (a keystroke's tokens, a beam's
    # branches), and on two cores a second thread cost more in hand-offs than it saved (the
    # shipped 4 x 384 graph after 300 cached tokens: 1.51 / 2.55 / 6.2 ms for 1 / 16 / 64
    # new tokens on one thread against 1.85 / 3.16 / 6.39 ms on two); the other core runs
    # CodeFill meanwhile.
    def __init__(self, folder: Path, threads: int = 1) -> None:
        folder = Path(folder)
        manifest = verify_release(folder)
        try:
            cfg = json.loads((folder / "config.json").read_text())
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self._short: dict[str, tuple[int, ...]] = {}
            self._head: tuple[str, list[int]] | None = None
            head_dim = cfg["n_embd"] // cfg["n_head"]
            self._open(folder / "model.onnx", threads, cfg["n_layer"], cfg["n_head"], head_dim)
            self.block_size = cfg["block_size"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError, Exception) as exc:
            # onnxruntime raises its own exception classes (InvalidProtobuf, Fail, ...) that
            # share no public base; any of them means "this model cannot be used".
            raise EngineError(f"cannot load model from {folder}: {exc}") from exc
        self.n_vocab = self.tokenizer.get_vocab_size()
        self.info = ModelInfo(
            manifest.get("name", folder.name),
            folder,
            manifest.get("parameters", 0),
            self.block_size,
        )
        special = {EOT, PAD, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE}
        self.eot_token = self.tokenizer.token_to_id(EOT)
        self.fim_ids = tuple(
            self.tokenizer.token_to_id(t) for t in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)
        )
        dec = byte_decoder()
        self.special_ids = {self.tokenizer.token_to_id(t) for t in special}
        self.token_bytes: list[bytes] = []
        for i in range(self.n_vocab):
            piece = self.tokenizer.id_to_token(i)
            if i in self.special_ids or piece is None:
                self.token_bytes.append(b"")
            else:
                self.token_bytes.append(bytes(dec[c] for c in piece))
        self.token_text = [b.decode("utf-8", errors="replace") for b in self.token_bytes]

    @classmethod
    def for_graph(
        cls, path: Path, n_layer: int, n_head: int, head_dim: int, threads: int = 1
    ) -> OnnxDecoder:
        """The graph alone, without tokenizer or release folder: `run`, `step` and
        `empty_past` work (the export checks a graph with it before the folder exists)."""
        lm = cls.__new__(cls)
        lm._open(Path(path), threads, n_layer, n_head, head_dim)
        return lm

    def _open(self, path: Path, threads: int, n_layer: int, n_head: int, head_dim: int) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Spinning worker threads burn a core between the short calls of a decode; on a
        # two-core laptop that time is taken from the editor and the event loop.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Without onnxruntime's own arena its scratch memory goes back to malloc, whose
        # arenas the server limits (`limit_malloc_arenas`): with one arena, the peak resident
        # memory of the benchmark replay was 27 MiB lower, at the same latency.
        opts.enable_cpu_mem_arena = False
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.n_layer, self.n_head, self.head_dim = n_layer, n_head, head_dim
        # graphs exported before the explicit mask input decode causally only
        names = {i.name for i in self.session.get_inputs()}
        self._explicit = names >= {"attn_mask", "position_ids"}
        self._windowed = "last_n" in names  # the head can skip all but the last tokens
        # one cache tensor per layer and kind (`past_key_0`, ...) or one stacked `past`
        self._split = "past" not in names
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        self._logits_width = (shapes.get("logits") or [None])[-1]
        if self._split and not isinstance(self._logits_width, int):
            raise EngineError(f"{path}: a per-layer cache graph needs a fixed-width logits output")
        self.tree_inputs = self._explicit  # decoders may run trees (tests switch it off)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added).

        Short texts (names being scored) are remembered; a long text is encoded as a head,
        remembered while the user types below it, plus a fresh tail (`split_point`).
        """
        # A lone surrogate (an editor can send one) is not text the tokenizer accepts.
        clean = text.encode("utf-8", "replace").decode("utf-8")
        if len(clean) <= SHORT_TEXT:
            ids = self._short.get(clean)
            if ids is None:
                if len(self._short) >= SHORT_MEMO:
                    self._short.clear()
                ids = self._short[clean] = tuple(self._encode(clean))
            return list(ids)
        cut = split_point(clean)
        if cut is None:
            return self._encode(clean)
        head, memo = clean[:cut], self._head
        if memo is None or memo[0] != head:
            memo = self._head = (head, self._encode(head))
        return memo[1] + self._encode(clean[cut:])

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens dropped."""
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", errors="replace")

    def empty_past(self, batch: int = 1) -> np.ndarray:
        """A cache holding nothing yet: (L, 2, B, H, 0, D)."""
        return np.zeros((self.n_layer, 2, batch, self.n_head, 0, self.head_dim), np.float32)

    def run(
        self,
        ids: np.ndarray,
        past: np.ndarray,
        mask: np.ndarray | None = None,
        pos: np.ndarray | None = None,
        last: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits (B, T, V) and the extended cache; causal after the cache by default.

        `mask` (B, T, P+T) says which cached and new tokens each new token sees, `pos`
        (B, T) gives their positions: a tree of drafts is verified in one call. With `last`,
        logits come for the last `last` tokens only (B, last, V) where the graph can do that
        (a `last_n` input), which saves the output head's work on the others.
        """
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if mask is None and ids.shape[1] > PREFILL_CHUNK:
            return self._chunked(ids, past, last)
        feed = {"input_ids": ids}
        if mask is not None and not self._explicit:
            raise EngineError("this model's graph has no attention-mask input")
        if self._explicit:
            if mask is None or pos is None:
                mask, pos = causal_inputs(ids.shape[0], past.shape[4], ids.shape[1])
            feed["attn_mask"], feed["position_ids"] = mask, pos
        if self._windowed:
            feed["last_n"] = np.asarray([last or ids.shape[1]], np.int64)
        if self._split:
            return self._run_split(feed, past, last)
        logits, present = run_graph(self.session, {**feed, "past": past})
        return logits, present

    def _chunked(
        self, ids: np.ndarray, past: np.ndarray, last: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`run` of a long causal input, PREFILL_CHUNK tokens per call; the same logits and
        cache (rows are quantized one by one, so a row does not depend on its call)."""
        T = ids.shape[1]
        first = T - (last or T)  # the first position whose logits are returned
        kept = []
        for a in range(0, T, PREFILL_CHUNK):
            b = min(a + PREFILL_CHUNK, T)
            want = b - max(a, first)  # rows of this chunk that are returned
            logits, past = self.run(ids[:, a:b], past, last=max(want, 1))
            if want > 0:
                kept.append(logits[:, logits.shape[1] - want :])
        return np.concatenate(kept, axis=1), past

    def _run_split(
        self, feed: dict[str, np.ndarray], past: np.ndarray, last: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`run` on a graph with a cache tensor per layer and kind (`run_cached`)."""
        B, T = feed["input_ids"].shape
        rows = min(last, T) if last and self._windowed else T
        (logits,), present = run_cached(
            self.session, feed, past, T, {"logits": (B, rows, self._logits_width)}
        )
        return logits, present

    def step_all(self, ids: np.ndarray, past: np.ndarray) -> np.ndarray:
        """Log-probs after every position of `ids` (B, T, V), for teacher-forced scoring."""
        logits, _ = self.run(ids, past)
        return log_softmax(logits)

    def step(self, ids: np.ndarray, past: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-probs of the token after the last of `ids` (B, V), and the extended cache."""
        logits, present = self.run(ids, past, last=1)
        return log_softmax(logits[:, -1, :]), present


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probs (float64) over the last axis."""
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
