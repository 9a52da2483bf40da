"""Token Recycling: lossless speculative decoding for greedy line completion.

Token Recycling (Luo et al., 2024) drafts without a draft model. An adjacency table keeps,
for every token, the top-k tokens the model itself last ranked after it; every model call
refreshes the rows of the tokens it ran. Each step fills a fixed-shape tree from the table
(breadth-first from the token about to be run), runs the whole tree in one call with a tree
attention mask (a node sees the cache and its own ancestors) and per-node positions, and
walks it along the greedy choices: the longest matching path is accepted, the model's choice
after it comes free, and only the accepted path's keys/values join the cache.

The rows also learn from the prompts: a `PrefixCache` the table watches (`PrefixCache.watch`,
as the engine's inline cache while the table drafts) shows it every prompt token it runs with
the logits after it, so the table holds the model's next tokens in this document's contexts,
not in whatever line last ran a token. On held-out lines that took the 16-node tree from 1.28
to 1.67 tokens per call; it costs the idle work the output head on every prompt token.

Drafts also come from the document itself (prompt lookup): when the last tokens occurred
before in the prompt or the line so far, the tokens that followed them there are drafted as
one chain, in place of the table's tree. Code repeats itself (`self.x = x`, a call pattern,
the suffix below the cursor), and on this CPU a call costs more with every token it runs, so
one likely chain pays where a wide tree does not (docs/benchmarks.md).

The line decoded last is searched as well, before the prompt. Ghost text is asked for at
keystroke after keystroke of the same line: where the user types something other than the
shown text, the new line mostly ends as the shown one did (`(self, key)` after `get` or
`gets`), and its tokens are drafted from the old one.

The choice at every token goes through the same `LineState` as plain greedy decoding, so the
output is the same; per-row int8 activation scales keep a node's logits independent of the
rest of the tree (float rounding aside).
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass

import numpy as np

from .decoding import LineState, PrefixCache, Prompt, Vocab, _prefill, _window
from .runtime import OnnxDecoder, log_softmax
from .types import CancelToken

# How often the rank-r candidate of the table turned out to be the next token (a prior for
# the shape of the tree: likely ranks get deep chains, unlikely ones stay shallow).
RANK_PRIOR = (0.55, 0.14, 0.07, 0.045, 0.03, 0.022, 0.017, 0.013)


@dataclass(frozen=True)
class TreeShape:
    """A static draft tree in breadth-first order; node 0 is the root (the token to run)."""

    parent: np.ndarray  # (N,) index of each node's parent, -1 for the root
    rank: np.ndarray  # (N,) which of the parent's table candidates the node takes
    depth: np.ndarray  # (N,) 0 for the root
    ancestors: np.ndarray  # (N, N) bool: node i sees node j (j is i or an ancestor of i)

    @property
    def size(self) -> int:
        """Nodes in the tree, the root included."""
        return len(self.parent)


def tree_shape(nodes: int = 64, depth: int = 6, k: int = 8) -> TreeShape:
    """The `nodes` most likely paths under RANK_PRIOR, at most `depth` below the root."""
    prior = RANK_PRIOR[:k]
    # best-first: a path's score is the product of its ranks' priors
    chosen: list[tuple[int, ...]] = [()]
    frontier = [(-p, (r,)) for r, p in enumerate(prior)] if depth > 0 else []
    heapq.heapify(frontier)
    while frontier and len(chosen) < nodes:
        neg, path = heapq.heappop(frontier)
        chosen.append(path)
        if len(path) < depth:
            for r, p in enumerate(prior):
                heapq.heappush(frontier, (neg * p, (*path, r)))
    chosen.sort(key=lambda path: (len(path), path))  # breadth-first
    index = {path: i for i, path in enumerate(chosen)}
    parent = np.array([index[path[:-1]] if path else -1 for path in chosen])
    rank = np.array([path[-1] if path else 0 for path in chosen])
    depths = np.array([len(path) for path in chosen])
    n = len(chosen)
    ancestors = np.eye(n, dtype=bool)
    for i in range(1, n):
        ancestors[i] |= ancestors[parent[i]]
    return TreeShape(parent, rank, depths, ancestors)


class AdjacencyTable:
    """token -> the k tokens the model ranked highest after it, last time it ran that token."""

    def __init__(self, n_vocab: int, k: int = 8) -> None:
        self.k = k
        self.next = np.zeros((n_vocab, k), np.int64)
        self._lock = threading.Lock()

    def update(self, tokens: np.ndarray, logits: np.ndarray) -> None:
        """Refresh the rows of `tokens` (N,) from the logits after each of them (N, V)."""
        top = np.argpartition(logits, -self.k, axis=1)[:, -self.k :]
        order = np.argsort(-np.take_along_axis(logits, top, axis=1), axis=1)
        with self._lock:
            self.next[tokens] = np.take_along_axis(top, order, axis=1)

    def draft(self, root: int, shape: TreeShape, n: int) -> np.ndarray:
        """Tokens of the first `n` nodes of `shape`, filled breadth-first from `root`."""
        tokens = np.empty(n, np.int64)
        tokens[0] = root
        with self._lock:
            for i in range(1, n):  # parents come first in breadth-first order
                tokens[i] = self.next[tokens[shape.parent[i]], shape.rank[i]]
        return tokens


def document_draft(ids: np.ndarray, length: int, longest: int = 4) -> np.ndarray:
    """Up to `length` tokens that followed the latest earlier occurrence of the longest suffix
    of `ids` (at most `longest` tokens) that occurred before; empty if the last token is new."""
    n = len(ids)
    if n < 2 or length <= 0:
        return ids[:0]
    at = np.flatnonzero(ids[: n - 1] == ids[n - 1])  # where the last token occurred before
    for m in range(1, longest):  # keep the matches that also match one more token back
        ok = at[at >= m]
        ok = ok[ids[ok - m] == ids[n - 1 - m]]
        if not len(ok):
            break
        at = ok
    if not len(at):
        return ids[:0]
    return ids[at[-1] + 1 : at[-1] + 1 + length]


@dataclass(frozen=True)
class Draft:
    """One call's nodes: tokens, each node's parent (-1 for the root) and depth, and which
    nodes each node sees (itself and its ancestors)."""

    tokens: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    ancestors: np.ndarray

    @classmethod
    def chain(cls, tokens: np.ndarray) -> Draft:
        """A root and the tokens after it, each the child of the one before."""
        n = len(tokens)
        return cls(tokens, np.arange(-1, n - 1), np.arange(n), np.tril(np.ones((n, n), bool)))


# The drafters `EngineSettings.line_drafts` names: Token Recycling's tree from the table, or
# a chain from the document. On held-out lines (`fillpoint bench --decoding`, the table
# learning from the prompts) trees of 16, 8, 6 and 4 nodes ran at 0.83x, 1.08x, 1.18x and
# 1.20x the speed of plain greedy decoding (a call costs more with every node on this CPU),
# document chains of 3, 4, 6 and 8 tokens at 1.38x, 1.43x, 1.38x and 1.34x.
DRAFTERS: dict[str, dict[str, int]] = {
    "table": {"nodes": 4, "depth": 3},
    "document": {"nodes": 1, "depth": 0, "chain": 4},
}


class Recycler:
    """Token Recycling for one model; the table persists across requests.

    `chain` > 0 drafts up to that many tokens from the document when its last tokens occurred
    before (`document_draft`: in the line decoded last, the prompt or the line so far), and
    the table's tree otherwise; a one-node tree (`nodes` = 1) drafts nothing, and the table
    is then neither filled nor read.
    """

    def __init__(
        self, lm: OnnxDecoder, nodes: int = 16, depth: int = 5, k: int = 8, chain: int = 0
    ) -> None:
        self.lm, self.chain = lm, chain
        self.shape = tree_shape(nodes, depth, k)
        # a vocabulary-sized table (1 MiB for the shipped model) only where a tree reads it
        self.table = AdjacencyTable(lm.n_vocab, k) if self.shape.size > 1 else None
        self.calls = 0  # model calls made, prefills included
        self.tokens = 0  # tokens decoded by those calls
        self.last = np.zeros(0, np.int64)  # the tokens of the line decoded last

    def _draft(self, root: int, history: np.ndarray, limit: int) -> Draft:
        """The nodes to run after `history` (the prompt and the line so far), `root` first,
        at most `limit` below it."""
        if self.chain > 0 and limit > 0:
            seen = np.concatenate([self.last, history, [root]])
            found = document_draft(seen, min(self.chain, limit))
            if len(found):
                return Draft.chain(np.append(root, found))
        if self.table is None:
            return Draft.chain(np.array([root]))
        shape = self.shape
        n = int(np.searchsorted(shape.depth, limit, side="right"))
        tokens = self.table.draft(root, shape, n)
        return Draft(tokens, shape.parent[:n], shape.depth[:n], shape.ancestors[:n, :n])

    def greedy_line(
        self,
        vocab: Vocab,
        prompt: Prompt,
        max_tokens: int = 48,
        cancel: CancelToken | None = None,
        cache: PrefixCache | None = None,
    ) -> tuple[str, float]:
        """What `decoding.greedy_line` returns, in fewer model calls."""
        lm = self.lm
        ids = _window(lm, prompt.ids, max_tokens)
        logp, past = _prefill(lm, ids, cache, cancel)
        self.calls += 1
        if self.table is not None:
            self.table.update(np.asarray(ids[-1:]), logp)
        state = LineState(vocab, prompt.need, max_tokens)
        if cancel is not None:
            cancel.check()
        root = state.push(logp[0])
        # Rejected drafts stay in the cache, hidden by the mask: no copy of the cache per step.
        seen = np.ones(past.shape[4], bool)  # which cached entries are real tokens
        history = np.asarray(ids, np.int64)  # the prompt, then the tokens accepted
        while root is not None and not state.done:
            if cancel is not None:
                cancel.check()
            S, P = len(seen), int(seen.sum())  # cached entries; real tokens among them
            # nodes past the context or the token budget are left out
            limit = min(lm.block_size - 1 - P, max_tokens - len(state.ids) - 1)
            draft = self._draft(root, history, limit)
            tokens, n = draft.tokens, len(draft.tokens)
            mask = np.zeros((1, n, S + n), bool)
            mask[0, :, :S] = seen
            mask[0, :, S:] = draft.ancestors
            pos = (P + draft.depth)[None].astype(np.int64)
            logits, past = lm.run(tokens[None], past, mask, pos)
            self.calls += 1
            if self.table is not None:
                self.table.update(tokens, logits[0])
            kids: dict[int, dict[int, int]] = {}
            for i in range(1, n):
                kids.setdefault(int(draft.parent[i]), {}).setdefault(int(tokens[i]), i)
            node, path = 0, [0]
            while True:
                t = state.push(log_softmax(logits[0, node]))
                child = kids.get(node, {}).get(t) if t is not None else None
                if child is None or state.done:
                    root = t
                    break
                node = child
                path.append(node)
            seen = np.concatenate([seen, np.zeros(n, bool)])
            seen[S + np.asarray(path)] = True
            history = np.append(history, tokens[path])
        self.tokens += len(state.ids)
        self.last = np.asarray(state.ids, np.int64)
        return state.result()
