"""Train the byte-level BPE tokenizer (with FIM special tokens) on the corpus."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from .corpus import iter_split

EOT = "<|endoftext|>"
PAD = "<|pad|>"
FIM_PREFIX = "<fim_prefix>"
FIM_SUFFIX = "<fim_suffix>"
FIM_MIDDLE = "<fim_middle>"
SPECIAL_TOKENS = [EOT, PAD, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE]


def sample_texts(corpus: Path, max_chars: int, seed: int = 0) -> Iterator[str]:
    """A random sample of train files up to `max_chars` characters."""
    records = list(iter_split(corpus, "train"))
    random.Random(seed).shuffle(records)
    total = 0
    for rec in records:
        if total >= max_chars:
            break
        total += len(rec["text"])
        yield rec["text"]


# GPT-2's pre-tokenizer regex, except that `_` is a word character: identifiers such as
# `__init__` or `max_items` stay one pre-token, so BPE can learn them whole instead of
# splitting at every underscore. A leading space still attaches to the next word.
PRETOKEN_PATTERN = r" ?[\p{L}_][\p{L}\p{N}_]*| ?\p{N}+| ?[^\s\p{L}\p{N}_]+|\s+(?!\S)|\s+"


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE with the code-aware pre-tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKEN_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(
    texts: Iterator[str],
    vocab_size: int = 8192,
    tok: Tokenizer | None = None,
    show_progress: bool = True,
) -> Tokenizer:
    """Train BPE on `texts` (into `tok`, default the code-aware one); specials get ids 0..4."""
    tok = tok or new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def chars_per_token(tok: Tokenizer, texts: list[str]) -> float:
    """Compression: characters per token over `texts`."""
    chars = sum(len(t) for t in texts)
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts))
    return chars / max(tokens, 1)
