"""Data mixture inference from BPE merge lists (Hayase et al., 2024): a linear program.

A BPE trainer merges, at step t, the most frequent pair of the mixture. With mixture
weights a_i over categories and c_{i,t}(p) the count of pair p in category i's sample
after the first t-1 merges (per byte of that sample), the chosen merge m_t satisfies
sum_i a_i (c_{i,t}(p) - c_{i,t}(m_t)) <= v_t for every other pair p, where v_t >= 0 is a
slack (samples are finite, so some steps disagree), plus v_p >= 0 per pair, shared by
all steps (a pair over-represented in a sample pays once, not at every step). We minimize
the total slack over the simplex. Only the most frequent pairs per category are kept as
candidates per step, and the constraints among them are added lazily: solve, add the
violated ones, repeat.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Pair = tuple[str, str]


def load_merges(path: Path) -> list[Pair]:
    """The merge list of a tokenizer.json (either the "a b" or the ["a", "b"] form)."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]
    ]


def word_counts(texts: Iterable[str], pre_tokenizer: object) -> Counter:
    """Pre-token counts (in the byte-level alphabet) of `texts`, as the BPE trainer sees them."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(text))
    return counts


class PairCounter:
    """Pair counts of one category's words, updated merge by merge (incremental BPE)."""

    def __init__(self, words: Counter) -> None:
        self.words = [list(w) for w in words]
        self.freq = list(words.values())
        self.total = float(sum(len(w) * n for w, n in zip(self.words, self.freq, strict=True)))
        self.counts: dict[Pair, int] = defaultdict(int)
        self.where: dict[Pair, set[int]] = defaultdict(set)
        for idx, w in enumerate(self.words):
            for pair in zip(w, w[1:], strict=False):
                self.counts[pair] += self.freq[idx]
                self.where[pair].add(idx)
        self.heap = [(-n, p) for p, n in self.counts.items()]
        heapq.heapify(self.heap)

    def rate(self, pair: Pair) -> float:
        """Occurrences of `pair` per byte of the sample."""
        return self.counts.get(pair, 0) / max(self.total, 1.0)

    def top(self, k: int) -> list[Pair]:
        """The `k` most frequent pairs now (stale heap entries are dropped on the way)."""
        found: list[tuple[int, Pair]] = []
        seen: set[Pair] = set()
        while self.heap and len(found) < k:
            neg, pair = heapq.heappop(self.heap)
            if pair in seen or self.counts.get(pair, 0) != -neg or neg == 0:
                continue
            seen.add(pair)
            found.append((neg, pair))
        for item in found:
            heapq.heappush(self.heap, item)
        return [p for _, p in found]

    def merge(self, pair: Pair) -> None:
        """Apply one merge to every word that contains the pair."""
        a, b = pair
        joined = a + b
        changed: set[Pair] = set()
        for idx in self.where.pop(pair, set()):
            w, n = self.words[idx], self.freq[idx]
            new: list[str] = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    new.append(joined)
                    i += 2
                else:
                    new.append(w[i])
                    i += 1
            if len(new) == len(w):
                continue
            for p in zip(w, w[1:], strict=False):
                self.counts[p] -= n
                changed.add(p)
            for p in zip(new, new[1:], strict=False):
                self.counts[p] += n
                self.where[p].add(idx)
                changed.add(p)
            self.words[idx] = new
        self.counts.pop(pair, None)
        for p in changed:
            n = self.counts.get(p, 0)
            if n > 0:
                heapq.heappush(self.heap, (-n, p))
            else:
                self.counts.pop(p, None)
                self.where.pop(p, None)


@dataclass
class Constraints:
    """Per step: candidate-minus-chosen rates (candidates x categories) and each row's pair id."""

    steps: list[np.ndarray]
    pair_ids: list[np.ndarray]
    n_pairs: int


def build_constraints(
    merges: Sequence[Pair],
    samples: Sequence[Counter],
    top_k: int = 20,
    drop_unsupported: bool = True,
) -> Constraints:
    """Simulate the merges on every category's words and record the candidate pairs per step."""
    counters = [PairCounter(words) for words in samples]
    steps, ids = [], []
    index: dict[Pair, int] = {}
    for merge in merges:
        cands: set[Pair] = set()
        for pc in counters:
            cands.update(pc.top(top_k))
        if merge in cands or not drop_unsupported:
            cands.discard(merge)
            chosen = np.array([pc.rate(merge) for pc in counters])
            order = sorted(cands)
            rows = [[pc.rate(p) for pc in counters] for p in order]
            diff = np.array(rows).reshape(len(rows), len(counters)) - chosen
            keep = diff.max(axis=1) > 0  # a pair rarer everywhere binds nothing
            steps.append(diff[keep])
            kept = [p for p, k in zip(order, keep, strict=True) if k]
            ids.append(np.array([index.setdefault(p, len(index)) for p in kept], int))
        else:
            # No sample has the merge among its frequent pairs: a merge the samples cannot
            # explain (a name peculiar to the tokenizer's own documents). Its slack would
            # only reward weights that make the strongest other pair weak, a bias.
            steps.append(np.zeros((0, len(counters))))
            ids.append(np.zeros(0, int))
        for pc in counters:
            pc.merge(merge)
    return Constraints(steps, ids, len(index))


def solve_mixture(
    cons: Constraints, max_rounds: int = 30, scale: float = 1e4, tol: float = 1e-9
) -> tuple[np.ndarray, dict]:
    """Mixture weights minimizing total slack; constraints added lazily (HiGHS LP)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    n = next((s.shape[1] for s in cons.steps if s.size), 0) or 1
    steps = [s * scale for s in cons.steps]
    n_steps, n_pairs = len(steps), cons.n_pairs
    n_vars = n + n_steps + n_pairs
    active: list[set[int]] = [set() for _ in steps]
    for t, s in enumerate(steps):  # start from each step's most binding pair per category
        if s.size:
            active[t].update(int(j) for j in np.argmax(s, axis=0))
    rounds = 0
    for _ in range(max_rounds):
        rounds += 1
        rows, cols, vals, r = [], [], [], 0
        for t, idx in enumerate(active):
            for j in sorted(idx):
                rows += [r] * (n + 2)
                cols += [*range(n), n + t, n + n_steps + int(cons.pair_ids[t][j])]
                vals += [*steps[t][j], -1.0, -1.0]
                r += 1
        a_ub = coo_matrix((vals, (rows, cols)), shape=(r, n_vars)).tocsr() if r else None
        res = linprog(
            np.concatenate([np.zeros(n), np.ones(n_steps + n_pairs)]),
            A_ub=a_ub,
            b_ub=np.zeros(r) if r else None,
            A_eq=np.concatenate([np.ones(n), np.zeros(n_steps + n_pairs)])[None, :],
            b_eq=[1.0],
            bounds=[(0, None)] * n_vars,
            method="highs",
        )
        if res.status != 0:
            raise RuntimeError(f"linprog failed: {res.message}")
        weights, slack, pair_slack = res.x[:n], res.x[n : n + n_steps], res.x[n + n_steps :]
        added = 0
        for t, s in enumerate(steps):
            if not s.size:
                continue
            viol = s @ weights - slack[t] - pair_slack[cons.pair_ids[t]]
            for j in np.flatnonzero(viol > tol):
                if int(j) not in active[t]:
                    active[t].add(int(j))
                    added += 1
        if not added:
            break
    info = {"rounds": rounds, "constraints": sum(len(a) for a in active), "objective": res.fun}
    return np.clip(weights, 0, None) / max(weights.clip(0).sum(), 1e-12), info
