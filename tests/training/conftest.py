"""Fixtures for the training tests: a small corpus and a tokenizer trained on it (~1 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from fillpoint.training.tiny import tiny_corpus
from fillpoint.training.tokenizer import sample_texts, train_tokenizer


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 150k characters of standard-library modules in the corpus JSONL layout."""
    return tiny_corpus(tmp_path_factory.mktemp("corpus"), max_chars=150_000)


@pytest.fixture(scope="session")
def tokenizer_path(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512-piece byte-level BPE trained on `small_corpus`, saved as tokenizer.json."""
    tok = train_tokenizer(sample_texts(small_corpus, 10**9), vocab_size=512)
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_path: Path) -> Tokenizer:
    """The trained tokenizer, loaded from its file as training and the server load it."""
    return Tokenizer.from_file(str(tokenizer_path))
