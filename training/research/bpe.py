"""Small tokenizers trained in-process for the studies (seconds on a few MB)."""

from __future__ import annotations

import json

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ..tokenizer import SPECIAL_TOKENS, new_tokenizer
from .mixture import Pair


def gpt2_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE with GPT-2's own pre-tokenizer regex."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_bpe(texts: list[str], vocab_size: int, gpt2: bool = False) -> Tokenizer:
    """Train a byte-level BPE quietly: the project's code-aware pre-tokenizer, or GPT-2's."""
    tok = gpt2_tokenizer() if gpt2 else new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def merges_of(tok: Tokenizer) -> list[Pair]:
    """A tokenizer's merge list."""
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
