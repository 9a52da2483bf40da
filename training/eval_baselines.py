"""The n-gram and file-copy baselines on the metrics that compare text, not ranked names:
token-level accuracy and line completion.

Line completion is scored on lexical tokens here (`tokens_after`), since the baselines
produce tokens, not layout: a prediction is an exact match when its tokens are the rest of
the line's, and edit similarity compares the tokens joined by single spaces. The
engine's ghost text is scored the same way in the same table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .eval_metrics import edit_sim
from .eval_ngram import END, START, Ngram, context_tokens, file_copy, lex
from .token_accuracy import Tally, held_out_texts

LINE_TOKENS = 40  # the most tokens a baseline predicts for the rest of a line

LinePredictor = Callable[[str], list[str]]  # text before the cursor -> tokens to line end


def tokens_after(head: str, text: str) -> list[str]:
    """The lexical tokens that `text` adds after `head` (the cursor's statement stays open)."""
    before = context_tokens(head)
    return context_tokens(head + text)[len(before) :]


def line_token_scores(preds: list[list[str]], truths: list[list[str]]) -> dict:
    """Exact match (share) and edit similarity (0-100) of token sequences."""
    n = len(truths)
    if not n:
        return {"n": 0}
    exact = sum(p == t for p, t in zip(preds, truths, strict=True))
    sim = sum(edit_sim(" ".join(p), " ".join(t)) for p, t in zip(preds, truths, strict=True))
    return {"exact": exact / n, "edit_sim": sim / n, "n": n}


def line_baselines(ngram: Ngram) -> dict[str, LinePredictor]:
    """The trigram model's greedy continuation and the file's own copy, up to the statement's
    end (`<nl>`) or LINE_TOKENS tokens."""
    return {
        "trigram": lambda head: ngram.statement(head, LINE_TOKENS),
        "file copy": lambda head: file_copy(head, LINE_TOKENS),
    }


def line_table(
    heads: list[str],
    truths: list[str],
    engine_lines: dict[str, list[str]],
    baselines: dict[str, LinePredictor],
) -> dict[str, dict]:
    """Token-level line scores of the engine's lines (already made, one per head) and of
    the baselines, on the same samples."""
    want = [tokens_after(h, t) for h, t in zip(heads, truths, strict=True)]
    out = {}
    for name, lines in engine_lines.items():
        got = [tokens_after(h, line) for h, line in zip(heads, lines, strict=True)]
        out[name] = line_token_scores(got, want)
    for name, predict in baselines.items():
        out[name] = line_token_scores([predict(h) for h in heads], want)
    return out


def ngram_token_accuracy(ngram: Ngram, corpus: Path, n_files: int = 40, seed: int = 0) -> dict:
    """The trigram model's teacher-forced next-token accuracy on the files `token_accuracy`
    reads: its most frequent token after the previous two (bigram back-off) against each
    lexical token. Statement ends are context, not targets, as layout is for the decoder;
    comments are not tokens here, and a string literal counts as right when a string was
    predicted (the model has only `<str>`): the rules the decoder's count follows."""
    texts = held_out_texts(corpus, n_files, seed)
    tally = Tally()
    for text in texts:
        toks = [START, START, *lex(text)]
        for a, b, target in zip(toks, toks[1:], toks[2:], strict=False):
            if target == END:
                continue
            found: Counter = ngram.tri.get((a, b)) or ngram.bi.get(b) or Counter()
            tally.add(bool(found) and found.most_common(1)[0][0] == target, target.isidentifier())
    return tally.summary(len(texts))
