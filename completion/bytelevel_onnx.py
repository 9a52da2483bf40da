"""The byte-level algorithm on the released model: its `tokenizers` BPE on bytes, a batched and
KV-cached scorer over onnxruntime, and the engine's entry point (`ByteLevelDecoder`)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate

import numpy as np
from tokenizers import Tokenizer

from .bytelevel import ByteLevel, cut_point, with_strings
from .bytelevel_base import ByteTokenizer, Ids, TokenStream, log_softmax
from .bytelevel_valid import PROJECT_PATTERN, project_classes
from .decoding import NEGLIGIBLE, PREFILL_CHUNK, longest_start
from .runtime import OnnxDecoder, byte_decoder, in_chunks
from .types import CancelToken, EngineError


def _utf8_len(codepoint: int) -> int:
    """Bytes in the UTF-8 form of a code point."""
    return 1 if codepoint < 0x80 else 2 if codepoint < 0x800 else 3 if codepoint < 0x10000 else 4


def _spec(tokenizer: Tokenizer) -> dict:
    """The tokenizer's JSON description."""
    return json.loads(tokenizer.to_str())


def _project_pretokenizer(spec: dict) -> bool:
    """True if the pre-tokenizer is training/tokenizer.py's: the regex, then bytes to chars."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    split = {"type": "Split", "pattern": {"Regex": PROJECT_PATTERN}, "behavior": "Isolated"}
    return (
        len(steps) == 2
        and all(steps[0].get(k) == v for k, v in split.items())
        and not steps[0].get("invert")
        and steps[1].get("type") == "ByteLevel"
        and steps[1].get("use_regex") is False
    )


class HFByteTokenizer(ByteTokenizer):
    """A `tokenizers` byte-level BPE on bytes, including bytes that are not valid UTF-8.

    Valid UTF-8 goes through `tokenizers` directly. An incomplete character (a byte-mode state
    such as b"caf\\xc3") is pre-tokenized as if it were a letter, then each pre-token is BPE'd
    by the model itself, so a word keeps growing through a multi-byte character.
    """

    PLACEHOLDER = "\u0100"  # a letter (\\p{L}) standing for each byte that is not UTF-8

    def __init__(
        self,
        tokenizer: Tokenizer,
        token_bytes: list[bytes] | None = None,
        special_ids: Iterable[int] | None = None,
    ) -> None:
        if tokenizer.normalizer is not None:
            raise ValueError("byte-level decoding needs a tokenizer without a normalizer")
        self.hf = tokenizer
        if special_ids is None:
            special_ids = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
        self.special_ids = frozenset(special_ids)
        if token_bytes is None:
            dec = byte_decoder()
            token_bytes = [
                b"" if i in self.special_ids else bytes(dec[c] for c in tokenizer.id_to_token(i))
                for i in range(tokenizer.get_vocab_size())
            ]
        self.token_bytes = token_bytes
        self._visible = {b: c for c, b in byte_decoder().items()}
        self._placeholders = {0xDC80 + b: self.PLACEHOLDER for b in range(128)}

    def encode(self, data: bytes | str) -> list[int]:
        """Canonical encoding; bytes that are not UTF-8 take the slow path."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                return self._encode_slow(data)
        return self.hf.encode(data, add_special_tokens=False).ids

    def encode_batch(self, items: Sequence[bytes]) -> list[list[int]]:
        """Batch `encode`: one `tokenizers` call for every item that is valid UTF-8."""
        out: list[list[int] | None] = [None] * len(items)
        texts, where = [], []
        for k, x in enumerate(items):
            try:
                texts.append(x.decode("utf-8"))
                where.append(k)
            except UnicodeDecodeError:
                out[k] = self._encode_slow(x)
        for k, enc in zip(
            where, self.hf.encode_batch(texts, add_special_tokens=False), strict=True
        ):
            out[k] = enc.ids
        return out  # type: ignore[return-value]

    def _pretokens(self, data: bytes) -> list[tuple[int, int]]:
        text = data.decode("utf-8", errors="surrogateescape")  # bad bytes -> U+DC80..U+DCFF
        size = [1 if o < 0x80 or 0xDC80 <= o <= 0xDCFF else _utf8_len(o) for o in map(ord, text)]
        offsets = [0, *accumulate(size)]  # char index -> byte offset
        pieces = self.hf.pre_tokenizer.pre_tokenize_str(text.translate(self._placeholders))
        return [(offsets[a], offsets[b]) for _, (a, b) in pieces]

    def bpe(self, piece: bytes) -> list[int]:
        """The model's BPE of one pre-token, on its visible (byte-level) characters."""
        return [tk.id for tk in self.hf.model.tokenize("".join(self._visible[c] for c in piece))]

    def _encode_slow(self, data: bytes) -> list[int]:
        return [i for a, b in self._pretokens(data) for i in self.bpe(data[a:b])]

    def pretoken_starts(self, data: bytes) -> list[int]:
        """Byte offsets where the pre-tokens of `data` start."""
        return [a for a, _ in self._pretokens(data)]

    def merges(self) -> list[tuple[int, int, int]] | None:
        """The BPE merges by rank as ids; None for a BPE with options that change merging."""
        model = _spec(self.hf).get("model", {})
        plain = {"dropout": None, "continuing_subword_prefix": None, "end_of_word_suffix": None}
        if model.get("type") != "BPE" or model.get("ignore_merges") or model.get("byte_fallback"):
            return None
        if any(model.get(k) != v for k, v in plain.items()):
            return None
        vocab = model["vocab"]
        pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in model["merges"]]
        try:
            return [(vocab[x], vocab[y], vocab[x + y]) for x, y in pairs]
        except KeyError:  # a merge whose parts or result are not in the vocabulary
            return None

    def added_texts(self) -> list[bytes]:
        """The added tokens' texts: `tokenizers` matches them in raw text first."""
        return [t.content.encode() for t in self.hf.get_added_tokens_decoder().values()]

    def char_classes(self) -> Callable[[str], str | None] | None:
        """The project pre-tokenizer's character classes, if this is that pre-tokenizer."""
        return project_classes if _project_pretokenizer(_spec(self.hf)) else None


class _OnnxStream:
    def __init__(self, lm: OnnxDecoder, past: np.ndarray, row: np.ndarray, room: int) -> None:
        self.lm, self.past, self.row, self.room = lm, past, row, room

    def push(self, token: int) -> None:
        logits, self.past = self.lm.run(np.asarray([[token]], np.int64), self.past)
        self.row, self.room = log_softmax(logits[0, -1]), self.room - 1


def _row(logits: np.ndarray) -> np.ndarray:
    """Kept rows of next-token log-probs over the last axis: float32, which is what the model
    computes in, at half the memory of the float64 that `log_softmax` returns (rows are kept
    by hundreds)."""
    return log_softmax(logits).astype(np.float32)


def _shared_start(tails: Sequence[Ids]) -> Ids:
    """The longest common start of `tails`, leaving each at least one token of its own."""
    n = min(len(t) for t in tails) - 1
    for k in range(n):
        if any(t[k] != tails[0][k] for t in tails):
            return tails[0][:k]
    return tails[0][: max(n, 0)]


@dataclass
class _TailTree:
    """Tail tokens run after one prefix: `past` holds the prefix's `base` entries, then every
    tail token run since, at the entry `slots` gives for the tail that ends with it."""

    past: np.ndarray
    slots: dict[Ids, int]
    base: int


class OnnxScorer:
    """A `Scorer` over `OnnxDecoder`: the prefix's KV cache is computed once and kept (LRU).

    A graph with a mask input runs the tails as a token tree on one cache that grows from
    call to call (`_TailTree`): every tail token run so far stays in it, hidden from the
    others by the mask, so a call runs only the tokens no earlier call ran (a beam's tails
    mostly share all but their last token with the step before). Other graphs score the
    tails in one batched call, right-padded (the model is causal, so padding after a tail
    does not change its rows), from the kept KV of their shared start."""

    def __init__(
        self,
        lm: OnnxDecoder,
        max_batch: int = 16,
        cached_prefixes: int = 2,
        max_rows: int = 64,
        shared_starts: int = 2,
        tree_room: int = 128,
    ) -> None:
        self.lm, self.max_batch, self.cached = lm, max_batch, cached_prefixes
        self.max_rows, self.shared_starts, self.tree_room = max_rows, shared_starts, tree_room
        self._trees: dict[Ids, _TailTree] = {}  # per kept prefix, on graphs with a mask input
        # prefix -> (rows keyed by tail, KV caches keyed by tail: () is the prefix's own)
        self._cache: OrderedDict[Ids, tuple[dict[Ids, np.ndarray], dict[Ids, np.ndarray]]]
        self._cache = OrderedDict()
        # keys/values of the windows the prompts will move to (`warm_ahead`), apart from the
        # kept prompts' LRU: a prompt starts from one as from a kept prefix
        self._ahead: OrderedDict[Ids, np.ndarray] = OrderedDict()
        self.calls = 0  # model calls made, for latency accounting

    def _run(
        self,
        ids: np.ndarray,
        past: np.ndarray,
        last: int | None = None,
        mask: np.ndarray | None = None,
        pos: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        furthest = past.shape[4] + ids.shape[1] if pos is None else int(pos.max()) + 1
        if furthest > self.lm.block_size:
            raise EngineError("byte-level prompt does not fit the model's context")
        self.calls += 1
        return self.lm.run(ids, past, mask, pos, last=last)

    def _entry(self, prefix: Ids) -> tuple[dict[Ids, np.ndarray], dict[Ids, np.ndarray]]:
        """The rows and KV caches after `prefix`; a new prefix runs only the tokens after its
        longest common start with a kept one (the next keystroke's prompt mostly is the last
        one's)."""
        if prefix in self._cache:
            self._cache.move_to_end(prefix)
            return self._cache[prefix]
        if not prefix:
            raise EngineError("the ONNX decoder needs at least one context token")
        n, old = self._longest(prefix)
        logits, past = self._run(np.asarray([prefix[n:]]), self._past(old, n), last=1)
        for kept in [p for p in self._cache if p == prefix[: len(p)]]:
            self._drop(kept)  # a prefix of this one: its keys/values are in this one's
        for kept in [p for p in self._ahead if p == prefix[: len(p)]]:
            del self._ahead[kept]  # the window has moved: its keys/values are in this one's
        entry = self._cache[prefix] = ({(): _row(logits[0, -1])}, {(): past})
        while len(self._cache) > self.cached:
            self._drop(next(iter(self._cache)))
        return entry

    def _longest(self, prefix: Ids) -> tuple[int, Ids | None]:
        """The kept prefix sharing the longest start with `prefix` and that length
        (`decoding.longest_start`); (0, None) if none."""
        kept = [*self._cache, *self._ahead]
        best, n = longest_start(kept, prefix)
        return n, kept[best] if best >= 0 else None

    def _past(self, kept: Ids | None, n: int) -> np.ndarray:
        """The keys/values of the first `n` tokens of a kept prefix or window ahead (None:
        an empty cache)."""
        if kept is None:
            return self.lm.empty_past(1)
        past = self._cache[kept][1][()] if kept in self._cache else self._ahead[kept]
        return np.ascontiguousarray(past[:, :, :, :, :n])

    def _drop(self, prefix: Ids) -> None:
        """Forget a kept prefix with its rows, keys/values and tail tree."""
        del self._cache[prefix]
        self._trees.pop(prefix, None)

    def warm(self, prefix: Ids, check: Callable[[], None] | None = None) -> int:
        """Run `prefix` into the cache `PREFILL_CHUNK` tokens per call, calling `check`
        between calls (a cancellation hook that raises: what ran stays kept), so that idle
        work on a long new prompt never holds a request up for more than one chunk. Returns
        the tokens run."""
        if prefix in self._cache:
            return 0
        n, _ = self._longest(prefix)
        # each entry replaces the one before: a prefix of it
        in_chunks(lambda end: self._entry(prefix[:end]), n, len(prefix), PREFILL_CHUNK, check)
        return len(prefix) - n

    def warm_ahead(self, prefix: Ids, check: Callable[[], None] | None = None) -> int:
        """Run `prefix`, the start of the window that prompts will move to once the text
        outgrows theirs, into a slot of its own, `PREFILL_CHUNK` tokens per call (what ran
        stays kept when `check` raises). A prompt of the moved window then runs only what
        the user typed since, instead of the whole window again (positions are absolute:
        moving the window changes every key). Keeps as many windows as prompts. Returns the
        tokens run."""
        if prefix in self._ahead or prefix in self._cache:
            return 0
        n, old = self._longest(prefix)
        past, ran = self._past(old, n), 0
        for a in range(n, len(prefix), PREFILL_CHUNK):
            b = min(a + PREFILL_CHUNK, len(prefix))
            _, past = self._run(np.asarray([prefix[a:b]]), past, last=1)
            if old in self._ahead and old == prefix[: len(old)]:
                del self._ahead[old]  # the part ran before, now in this one's
            self._ahead[old := prefix[:b]] = past
            while len(self._ahead) > self.cached:
                del self._ahead[next(iter(self._ahead))]
            ran += b - a
            if check is not None:
                check()
        return ran

    def _keep(self, kv: dict[Ids, np.ndarray], tail: Ids, past: np.ndarray) -> None:
        """Keep the KV after prefix + tail, dropping the oldest kept one (never the prefix's)."""
        kv[tail] = past
        while len(kv) > self.shared_starts + 1:
            del kv[next(k for k in kv if k)]

    def _run_tails(
        self, rows: dict[Ids, np.ndarray], kv: dict[Ids, np.ndarray], chunk: list[Ids], start: Ids
    ) -> np.ndarray:
        """Run the tails after `start`, store their new rows, and return the KV after the
        last token run (that of the tail itself when there is one tail)."""
        ids = np.zeros((len(chunk), max(len(t) for t in chunk) - len(start)), np.int64)
        for b, tail in enumerate(chunk):
            ids[b, : len(tail) - len(start)] = tail[len(start) :]
        logits, present = self._run(ids, np.repeat(kv[start], len(chunk), axis=2))  # (B, T, V)
        for b, tail in enumerate(chunk):
            for k in range(len(start) + 1, len(tail) + 1):
                if tail[:k] not in rows:  # most prefixes of a tail are known already
                    rows[tail[:k]] = _row(logits[b, k - len(start) - 1])
        return present

    def _grow_tree(
        self,
        prefix: Ids,
        rows: dict[Ids, np.ndarray],
        kv: dict[Ids, np.ndarray],
        chunk: list[Ids],
    ) -> None:
        """Run the tokens of `chunk` that the prefix's tail tree lacks, in one call: each sees
        the prefix and its own tail's earlier tokens, wherever in the cache they are. The
        prefix's own keys/values (kv[()]) become a view of the tree's first entries: one
        copy of them is kept, not two."""
        tree = self._trees.get(prefix)
        if tree is None or tree.past.shape[4] - tree.base > self.tree_room:
            past = kv[()]
            tree = self._trees[prefix] = _TailTree(past, {}, past.shape[4])
        new: dict[Ids, int] = {}  # tail[:k] not in the tree -> its index in this call
        for tail in chunk:
            for k in range(1, len(tail) + 1):
                if tail[:k] not in tree.slots and tail[:k] not in new:
                    new[tail[:k]] = len(new)  # parents come before their children
        if not new:
            return
        S, n = tree.past.shape[4], len(new)
        mask = np.zeros((1, n, S + n), bool)
        for i, key in enumerate(new):
            parent = key[:-1]
            if parent in new:
                mask[0, i] = mask[0, new[parent]]
            else:  # the prefix and tree tokens: the parent and all of its starts are there
                mask[0, i, : tree.base] = True
                mask[0, i, [tree.slots[key[:k]] for k in range(1, len(key))]] = True
            mask[0, i, S + i] = True
        pos = (tree.base + np.asarray([len(key) - 1 for key in new], np.int64))[None]
        ids = np.asarray([[key[-1] for key in new]], np.int64)
        logits, tree.past = self._run(ids, tree.past, mask=mask, pos=pos)
        kv[()] = tree.past[:, :, :, :, : tree.base]
        tree.slots.update((key, S + i) for key, i in new.items())
        fresh = [(key, i) for key, i in new.items() if key not in rows]
        if fresh:  # one pass over the new rows
            made = _row(logits[0, [i for _, i in fresh]])
            rows.update(zip((key for key, _ in fresh), made, strict=True))

    def rows(self, prefix: Ids, tails: Sequence[Ids]) -> dict[Ids, np.ndarray]:
        """Rows after `prefix + tail[:k]`: one model call per `max_batch` maximal tails, from
        the KV of their shared start (one more call when several tails share a new start)."""
        rows, kv = self._entry(prefix)
        if len(rows) > self.max_rows:  # rows are V floats each: keep the cache bounded
            first = rows[()]
            rows.clear()
            rows[()] = first
            # a kept start's own rows are gone with them: tails run from it would lack them
            for start in [k for k in kv if k]:
                del kv[start]
            self._trees.pop(prefix, None)
        if getattr(self.lm, "tree_inputs", False):
            todo = [t for t in dict.fromkeys(tails) if t not in rows]
            for j in range(0, len(todo), self.max_batch):
                self._grow_tree(prefix, rows, kv, todo[j : j + self.max_batch])
            return rows
        todo = {t for t in tails if t not in rows}
        todo = sorted(t for t in todo if not any(o[: len(t)] == t and o != t for o in todo))
        for j in range(0, len(todo), self.max_batch):
            chunk = todo[j : j + self.max_batch]
            shared = _shared_start(chunk)
            start = max((k for k in kv if shared[: len(k)] == k), key=len)  # deepest kept
            if len(chunk) > 1 and start != shared:
                self._keep(kv, shared, self._run_tails(rows, kv, [shared], start))
                start = shared
            present = self._run_tails(rows, kv, chunk, start)
            if len(chunk) == 1:  # unpadded: the next, longer tail starts from here
                self._keep(kv, chunk[0], present)
        return rows

    def stream(self, prefix: Ids, ids: Ids) -> TokenStream:
        """Incremental decoding from the cached prefix."""
        rows, kv = self._entry(prefix)
        row, past = rows[()], kv[()]
        if ids:
            logits, past = self._run(np.asarray([ids]), past, last=1)
            row = log_softmax(logits[0, -1])
        return _OnnxStream(self.lm, past, row, self.lm.block_size - len(prefix) - len(ids))


# `warm_ahead` runs the next window once the prompt is within this many tokens of moving to
# it: a whole window step (`ByteLevel.window_step`), so the next window is run as soon as the
# prompt fills its own, and the idle work of several pauses can share the run.
AHEAD = 128
ROOM = 64  # positions kept free after a prompt: a line's 48 tokens and 16 bytes in byte mode
# The longest stretch after the cut (the last two pre-tokens) taken in byte mode: the covers
# need the encoding of every split point in it, which grows with its square (a 20,000-byte
# word would take many seconds); prompts with a longer one are healed instead (`fits`).
MAX_TAIL = 256


class ByteLevelDecoder:
    """The released decoder with exact byte-level prompt boundaries (the engine's entry point).

    Prompts use suffix-prefix-middle FIM when there is a suffix, so that the typed prefix and
    the generated middle are contiguous tokens, as the covers require. Keeps caches (prefix KV,
    rows, encodings): use one instance per worker thread, or call it under a lock.
    """

    def __init__(self, lm: OnnxDecoder, tol: float = 0.0, eps: float = 1e-3) -> None:
        self.lm, self.eps = lm, eps
        self.tok = HFByteTokenizer(lm.tokenizer, lm.token_bytes, lm.special_ids)
        self.scorer = OnnxScorer(lm)
        self.bytelevel = ByteLevel(self.tok, self.scorer, tol=tol)
        self._fits: tuple[str, bool] | None = None  # the last prompt `fits` answered for

    def fits(self, prefix: str) -> bool:
        """Whether a prompt ending with `prefix` is cheap to take in byte mode: its last two
        pre-tokens span at most MAX_TAIL bytes (almost always; not inside a huge word)."""
        if self._fits is None or self._fits[0] != prefix:
            x = prefix.encode()
            self._fits = (prefix, len(x) - cut_point(self.tok, x) <= MAX_TAIL)
        return self._fits[1]

    def keep_prompts(self, n: int) -> None:
        """Keep the caches of the last `n` prompts: 2 where lists and ghost text alternate
        (their prompts differ from the first token: with and without the code below), 1
        where one kind of request uses it. A kept prompt holds its keys/values, its tail
        tree and its rows: in the replay with byte-level ghost text, the second one cost
        about 40 MiB of peak memory."""
        self.scorer.cached = n

    def warm(
        self,
        prefix: str,
        suffix: str | None = None,
        lists: bool = True,
        cancel: CancelToken | None = None,
        ahead: bool = False,
    ) -> int:
        """Run the prompts that requests at the end of `prefix` will start from into the
        scorer's cache ahead of them, a chunk per call (`OnnxScorer.warm`): the list's with
        `lists`, the ghost text's when `suffix` is given (the same prompt when the suffix is
        blank). Returns the tokens run.

        `ahead`: instead, the windows those prompts move to once AHEAD more tokens are typed,
        where they move by then (`OnnxScorer.warm_ahead`): the move then costs a request
        what was typed since rather than the whole window (about 35 ms on two cores)."""
        x, room = prefix.encode(), self._room(0)
        check = cancel.check if cancel is not None else None
        contexts = [self._context(None)] if lists else []
        if suffix is not None:
            contexts.append(self._context(suffix))
        ran = 0
        for context in dict.fromkeys(contexts):
            if not ahead:
                ran += self._run_prompt(x, context, room, check)
            elif ids := self.bytelevel.split(x, context, max_prefix=room, ahead=AHEAD)[1]:
                ran += self.scorer.warm_ahead(ids, check)
        return ran

    def _run_prompt(
        self, x: bytes, context: Ids, room: int, check: Callable[[], None] | None
    ) -> int:
        """Run the prompt a search at the end of `x` starts from into the scorer's cache, a
        chunk per call with `check` between (`OnnxScorer.warm`): a search cut short on a
        long new prompt holds a request up for one chunk at most. Returns the tokens run."""
        _, ids, _ = self.bytelevel.split(x, context, max_prefix=room)
        return self.scorer.warm(ids, check)

    def _room(self, need: int) -> int:
        """The most prompt tokens that leave `need` positions free; the same for every need
        up to ROOM, so that list and ghost text prompts at one position keep one head (the
        window drops the oldest tokens in steps: `ByteLevel.start`) and share its cache."""
        return self.lm.block_size - max(need, ROOM) - 1

    def _context(self, suffix: str | None) -> Ids:
        if suffix is None or not suffix.strip():
            return (self.lm.eot_token,)
        fp, fs, fm = self.lm.fim_ids
        return (fp, fs, *self.lm.encode(suffix)[: min(64, self.lm.block_size // 4)], fm)

    def complete_identifier(
        self,
        prefix: str,
        k: int = 10,
        suffix: str | None = None,
        cancel: CancelToken | None = None,
        names: Sequence[tuple[str, float]] = (),
        weight: float = 0.5,
    ) -> list[tuple[str, float]]:
        """Continuations of the identifier before the cursor, with their probabilities.

        `names`: another model's continuations with probabilities, ensembled byte by byte
        with this one at `weight` (`bytelevel.with_strings`)."""
        ctx, max_bytes = self._context(suffix), 32
        room = self._room(max_bytes)  # the beam adds at most a token per byte
        check = cancel.check if cancel is not None else None
        if names:  # blending works on next-byte distributions: byte mode all the way
            blend = with_strings([(n.encode(), p) for n, p in names], weight)
            search = partial(self.bytelevel.complete_identifier, blend=blend)
        else:  # branches stop as the healed list's beam does
            search = partial(self.bytelevel.complete_identifier_healed, negligible=NEGLIGIBLE)
        if check is not None:  # else the search runs the prompt, in one call
            self._run_prompt(prefix.encode(), ctx, room, check)
        found = search(prefix.encode(), k, ctx, max_bytes=max_bytes, max_prefix=room, check=check)
        return [(y.decode("utf-8"), p) for y, p in found]

    def complete_line(
        self,
        prefix: str,
        suffix: str | None = None,
        max_tokens: int = 48,
        cancel: CancelToken | None = None,
        width: int = 1,
        eps: float | None = None,
    ) -> str:
        """The rest of the line at the end of `prefix`: greedy byte by byte until the token
        boundary is healed (one cover holds 1 - `eps` of the mass; default: the decoder's),
        then greedy token by token (`width` 1) or a beam of `width`."""
        ctx = self._context(suffix)
        room = self._room(max_tokens + 16)  # 16 bytes at most in byte mode
        if cancel is not None:  # else the search runs the prompt, in one call
            self._run_prompt(prefix.encode(), ctx, room, cancel.check)
        out = self.bytelevel.complete_bytes(
            prefix.encode(),
            stop=lambda b: b"\n" in b,
            max_bytes=8 * max_tokens,
            context=ctx,
            eps=self.eps if eps is None else eps,
            max_tokens=max_tokens,
            max_prefix=room,
            check=cancel.check if cancel is not None else None,
            width=width,
        )
        return out.split(b"\n", 1)[0].decode("utf-8", errors="ignore")
