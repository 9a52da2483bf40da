"""Near-duplicate detection for the corpus: MinHash signatures with an LSH band index.

Exact and layout-only copies are caught by hashing a normalised text (corpus.py). Vendored
files with a changed header, a renamed function or a few edited lines are not; they inflate
the training set and, across splits, leak held-out code into training. Each file becomes the
set of its 5-token shingles; 128 MinHash values estimate the Jaccard similarity of two sets,
and 16 bands of 8 rows find the candidate pairs without comparing every pair.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict

import numpy as np

NUM_PERM = 128
BANDS = 16
ROWS = NUM_PERM // BANDS
SHINGLE = 5
THRESHOLD = 0.8  # estimated Jaccard similarity at or above which a file is a near-duplicate
MAX_SHINGLES = 50_000  # bound the work on huge generated files

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PRIME = np.uint64((1 << 61) - 1)
_rng = np.random.default_rng(20261126)
_A = _rng.integers(1, (1 << 61) - 1, NUM_PERM, dtype=np.uint64)
_B = _rng.integers(0, (1 << 61) - 1, NUM_PERM, dtype=np.uint64)


def shingles(text: str) -> np.ndarray:
    """Distinct 32-bit hashes of the file's overlapping 5-token windows (comments dropped)."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    tokens = _TOKEN.findall(code)
    if len(tokens) < SHINGLE:
        tokens = tokens + [""] * (SHINGLE - len(tokens))
    grams = {" ".join(tokens[i : i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1)}
    hashes = np.fromiter((zlib.crc32(g.encode()) for g in grams), np.uint64, len(grams))
    return hashes[:MAX_SHINGLES]


def signature(text: str) -> np.ndarray:
    """MinHash signature (NUM_PERM values) of the file's shingle set."""
    h = shingles(text)
    # (a*h + b) mod p with p = 2^61 - 1: products of 61- and 32-bit numbers wrap in uint64,
    # which keeps the family well mixed even though it is not the textbook modular product.
    with np.errstate(over="ignore"):
        values = (np.outer(_A, h) + _B[:, None]) % _PRIME
    return values.min(axis=1)


class NearDuplicateIndex:
    """Streaming index: `add` reports whether a file nearly duplicates one already kept."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self.signatures: list[np.ndarray] = []
        self.buckets: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(BANDS)]

    def find(self, sig: np.ndarray) -> int | None:
        """Index of a kept file whose estimated similarity reaches the threshold, if any."""
        seen: set[int] = set()
        for band, bucket in enumerate(self.buckets):
            for j in bucket.get(sig[band * ROWS : (band + 1) * ROWS].tobytes(), ()):
                if j in seen:
                    continue
                seen.add(j)
                if float(np.mean(self.signatures[j] == sig)) >= self.threshold:
                    return j
        return None

    def add(self, text: str) -> bool:
        """Keep the file (True) unless it nearly duplicates a kept one (False)."""
        sig = signature(text)
        if self.find(sig) is not None:
            return False
        j = len(self.signatures)
        self.signatures.append(sig)
        for band, bucket in enumerate(self.buckets):
            bucket[sig[band * ROWS : (band + 1) * ROWS].tobytes()].append(j)
        return True


def similarity(a: str, b: str) -> float:
    """Exact Jaccard similarity of two files' shingle sets (for tests and reports)."""
    sa, sb = set(shingles(a).tolist()), set(shingles(b).tolist())
    return len(sa & sb) / max(1, len(sa | sb))
