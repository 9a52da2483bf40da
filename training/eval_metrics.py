"""Metrics of the evaluation: ranks, ROUGE-L, METEOR (exact matches only), edit similarity.

METEOR normally also matches stems and WordNet synonyms; neither means much for code tokens,
and the WordNet data is not available offline, so only exact matches align here.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import cache

METEOR_ALPHA = 0.9  # Lavie & Agarwal (2007): weight of precision vs recall in Fmean
METEOR_BETA = 3.0  # shape of the fragmentation penalty
METEOR_GAMMA = 0.5  # the largest share of Fmean the penalty can take


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    row = [0] * (len(b) + 1)
    for x in a:
        diag = 0  # row[j - 1] of the previous row
        for j, y in enumerate(b, 1):
            diag, row[j] = row[j], diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(pred: Sequence[str], ref: Sequence[str]) -> float:
    """ROUGE-L F1: the harmonic mean of LCS precision and recall (1.0 when both are empty)."""
    if not pred and not ref:
        return 1.0
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(pred), lcs / len(ref)
    return 2 * p * r / (p + r)


def meteor_alignment(pred: Sequence[str], ref: Sequence[str]) -> tuple[int, int]:
    """(matches, chunks) of the exact unigram alignment METEOR scores.

    The alignment has the most matches and, among those, the fewest chunks (runs of matches
    adjacent and in the same order in both sequences). An exact search over which occurrence
    of a repeated token maps where: meant for statement-length sequences.
    """
    pred, ref = tuple(pred), tuple(ref)

    @cache
    def best(i: int, used: int, prev: int) -> tuple[int, int]:
        """Best (matches, -chunks) of pred[i:]; `used` ref positions, pred[i-1] went to `prev`."""
        if i == len(pred):
            return 0, 0
        m, c = best(i + 1, used, -1)  # pred[i] left unmatched
        out = (m, c)
        for j, tok in enumerate(ref):
            if tok == pred[i] and not used >> j & 1:
                m, c = best(i + 1, used | 1 << j, j)
                new_chunk = prev < 0 or j != prev + 1
                out = max(out, (m + 1, c - new_chunk))
        return out

    matches, neg_chunks = best(0, 0, -1)
    return matches, -neg_chunks


def meteor(pred: Sequence[str], ref: Sequence[str]) -> float:
    """METEOR with exact matching: Fmean(alpha=0.9) times (1 - 0.5 * (chunks/matches)^3)."""
    if not pred and not ref:
        return 1.0
    matches, chunks = meteor_alignment(pred, ref)
    if matches == 0:
        return 0.0
    p, r = matches / len(pred), matches / len(ref)
    fmean = p * r / (METEOR_ALPHA * p + (1 - METEOR_ALPHA) * r)
    penalty = METEOR_GAMMA * (chunks / matches) ** METEOR_BETA
    return fmean * (1 - penalty)


def edit_sim(pred: str, truth: str) -> float:
    """Edit similarity 0-100 of two lines, ignoring surrounding whitespace (CodeXGLUE's ratio)."""
    return difflib.SequenceMatcher(None, pred.strip(), truth.strip()).ratio() * 100


def rank_metrics(ranked_lists: list[list[str]], truths: list[str]) -> dict:
    """top-1, top-5 and MRR@10 (reciprocal rank of the truth in the top 10, 0 if absent)."""
    n = len(truths)
    top1 = top5 = mrr = 0.0
    for ranked, truth in zip(ranked_lists, truths, strict=True):
        ranked = ranked[:10]
        if truth in ranked:
            r = ranked.index(truth) + 1
            mrr += 1 / r
            top1 += r == 1
            top5 += r <= 5
    return {"top1": top1 / n, "top5": top5 / n, "mrr10": mrr / n, "n": n} if n else {"n": 0}
