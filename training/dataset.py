"""Encode corpus splits into flat token/type arrays and sample (FIM-augmented) batches."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from .corpus import iter_split
from .tokenizer import EOT
from .tokentypes import EOT_TYPE, FIM_TYPE, char_types, piece_types

_TOKENIZER: Tokenizer | None = None


def _init_worker(tokenizer_path: str) -> None:
    global _TOKENIZER
    _TOKENIZER = Tokenizer.from_file(tokenizer_path)


def encode_file(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and aligned lexical types of one file (in a worker with a loaded tokenizer)."""
    assert _TOKENIZER is not None
    enc = _TOKENIZER.encode(text)
    ids = np.asarray(enc.ids, dtype=np.uint16)
    offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
    return ids, piece_types(char_types(text), offsets)


def encode_split(
    corpus: Path, split: str, tokenizer_path: Path, out: Path, jobs: int = 2, max_files: int = 0
) -> dict:
    """Write `{out}/{split}.ids.npy` and `.types.npy`: files joined by end-of-text."""
    tok = Tokenizer.from_file(str(tokenizer_path))
    eot = tok.token_to_id(EOT)
    texts = [r["text"] for r in iter_split(corpus, split)]
    if max_files:
        texts = texts[:max_files]
    ids_parts, type_parts = [], []
    with ProcessPoolExecutor(
        jobs, initializer=_init_worker, initargs=(str(tokenizer_path),)
    ) as pool:
        stream = pool.map(encode_file, texts, chunksize=16)
        for ids, types in tqdm(stream, total=len(texts), desc=f"encode {split}"):
            ids_parts += [ids, np.asarray([eot], dtype=np.uint16)]
            type_parts += [types, np.asarray([EOT_TYPE], dtype=np.uint8)]
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.uint16)
    types = np.concatenate(type_parts) if type_parts else np.zeros(0, np.uint8)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{split}.ids.npy", ids)
    np.save(out / f"{split}.types.npy", types)
    info = {"split": split, "files": len(texts), "tokens": int(len(ids))}
    info["chars"] = int(sum(len(t) for t in texts))
    (out / f"{split}.json").write_text(json.dumps(info))
    return info


class Batches:
    """Random windows of a flat token array, half of them rearranged for fill-in-the-middle."""

    def __init__(
        self,
        ids: np.ndarray,
        types: np.ndarray,
        block_size: int,
        fim_ids: tuple[int, int, int],
        eot: int,
        fim_rate: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.ids, self.types = ids, types
        self.block_size = block_size
        self.fim_prefix, self.fim_suffix, self.fim_middle = fim_ids
        self.eot = eot
        self.fim_rate = fim_rate
        self.rng = np.random.default_rng(seed)

    def _window(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.block_size + 1
        start = int(self.rng.integers(0, len(self.ids) - n + 1))  # the last window too
        ids = self.ids[start : start + n].astype(np.int64)
        return ids, self.types[start : start + n].astype(np.int64)

    def _fim(self, ids: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prefix-suffix-middle or suffix-prefix-middle over a window, 4 tokens shorter."""
        n = len(ids)
        body_ids, body_types = ids[: n - 4], types[: n - 4]
        a, b = sorted(self.rng.integers(0, len(body_ids) + 1, size=2))
        pre, mid, suf = slice(0, a), slice(a, b), slice(b, None)
        if self.rng.random() < 0.5:  # PSM
            parts = [
                ([self.fim_prefix], [FIM_TYPE]),
                (body_ids[pre], body_types[pre]),
                ([self.fim_suffix], [FIM_TYPE]),
                (body_ids[suf], body_types[suf]),
                ([self.fim_middle], [FIM_TYPE]),
                (body_ids[mid], body_types[mid]),
                ([self.eot], [EOT_TYPE]),
            ]
        else:  # SPM: the suffix first, then the prefix right before the middle
            parts = [
                ([self.fim_prefix], [FIM_TYPE]),
                ([self.fim_suffix], [FIM_TYPE]),
                (body_ids[suf], body_types[suf]),
                ([self.fim_middle], [FIM_TYPE]),
                (body_ids[pre], body_types[pre]),
                (body_ids[mid], body_types[mid]),
                ([self.eot], [EOT_TYPE]),
            ]
        out_ids = np.concatenate([np.asarray(p[0], np.int64) for p in parts])
        out_types = np.concatenate([np.asarray(p[1], np.int64) for p in parts])
        return out_ids[:n], out_types[:n]

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, T+1) token ids and types; inputs are [:, :-1], targets [:, 1:]."""
        rows_ids, rows_types = [], []
        for _ in range(batch_size):
            ids, types = self._window()
            if self.rng.random() < self.fim_rate:
                ids, types = self._fim(ids, types)
            rows_ids.append(ids)
            rows_types.append(types)
        return np.stack(rows_ids), np.stack(rows_types)
