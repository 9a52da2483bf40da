"""Small tokenizers trained in-process for the studies (seconds on a few MB)."""

from __future__ import annotations

import json

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from ..tokenizer import new_tokenizer, train_tokenizer
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
    return train_tokenizer(iter(texts), vocab_size, tok, show_progress=False)


def merges_of(tok: Tokenizer) -> list[Pair]:
    """A tokenizer's merge list."""
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
