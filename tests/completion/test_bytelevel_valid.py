"""The fast cover validity check against its definition: for every candidate token t,
encode(base + t) ends with t, on toy BPEs, a small trained BPE and the released tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, pre_tokenizers, trainers

from fillpoint.completion import bytelevel_valid
from fillpoint.completion.bytelevel_base import ByteTokenizer, Ids
from fillpoint.completion.bytelevel_onnx import HFByteTokenizer
from fillpoint.completion.bytelevel_reference import NO_LOOKAHEAD, TOY_PATTERN, ToyBPE
from fillpoint.completion.bytelevel_valid import ValidityIndex, open_char, squeeze
from fillpoint.completion.runtime import OnnxDecoder
from fillpoint.training.tokenizer import PRETOKEN_PATTERN, SPECIAL_TOKENS, new_tokenizer

ALPHABET = b"ab1_. \n\t"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def covers(found: list[tuple[Ids, np.ndarray]]) -> set[Ids]:
    """(head, tokens) groups as whole encodings."""
    return {(*head, int(t)) for head, ts in found for t in ts}


def by_definition(tok: ByteTokenizer, base: bytes) -> set[Ids]:
    """encode(base + t) for every token t where it ends with t."""
    out = set()
    for t, tb in enumerate(tok.token_bytes):
        if tb and (enc := tok.encode(base + tb))[-1:] == [t]:
            out.add(tuple(enc))
    return out


def check(tok: ByteTokenizer, index: ValidityIndex, base: bytes) -> None:
    """The fast path agrees with the definition for base and every token, given as an
    array of candidates or as None (the cached whole-vocabulary path, asked twice: built,
    then read back)."""
    everything = np.flatnonzero([bool(b) for b in tok.token_bytes])
    want = by_definition(tok, base)
    assert covers(index.extensions(base, everything)) == want, base
    for _ in range(2):
        assert covers(index.extensions(base)) == want, base


@st.composite
def toys(draw: st.DrawFn) -> ToyBPE:
    """A toy BPE with up to 10 random merges of up to 5 bytes, over both toy patterns."""
    tokens = [bytes([c]) for c in ALPHABET]
    merges = []
    for _ in range(draw(st.integers(0, 10))):
        a, b = draw(st.sampled_from(tokens)), draw(st.sampled_from(tokens))
        if a + b not in tokens and len(a + b) <= 5:
            merges.append((a, b))
            tokens.append(a + b)
    return ToyBPE(ALPHABET, merges, draw(st.sampled_from([TOY_PATTERN, NO_LOOKAHEAD])))


@FAST
@given(toys(), st.lists(st.sampled_from(ALPHABET), max_size=7).map(bytes))
def test_toy_extensions_equal_the_definition(tok: ToyBPE, base: bytes) -> None:
    index = ValidityIndex(tok)
    assert index.tree is not None and len(index.shapes) > 0  # the fast path is in use
    check(tok, index, base)


def test_merges_in_the_wrong_order_fall_back_to_encoding() -> None:
    tok = ToyBPE(ALPHABET, [(b"a", b"b")])
    tok.ranks = {(b"ab", b"a"): 0, (b"a", b"b"): 1}  # "aba" would merge before "ab" exists
    tok.token_bytes.append(b"aba")
    tok.ids[b"aba"] = len(tok.token_bytes) - 1
    index = ValidityIndex(tok)
    assert index.tree is None and (index.shape_id < 0).all()
    for base in (b"", b"ab", b"a b", b"ba"):
        check(tok, index, base)


def test_squeeze_maps_positions_back() -> None:
    sq = squeeze(b"x    ab\xc3\xa9__12", bytelevel_valid.project_classes)
    assert sq is not None
    key, at = sq
    assert key == b"a  aa__00"
    assert at == [0, 1, 4, 5, 7, 9, 10, 11, 12, 13]  # a cut run's second stands for its last
    assert squeeze(b"a\xc2\xa0", bytelevel_valid.project_classes) is None  # U+00A0: unsure


def test_open_char() -> None:
    assert open_char(b"caf\xc3") and open_char(b"\xe2\x82")
    assert not open_char(b"caf\xc3\xa9") and not open_char(b"x") and not open_char(b"\xa9")


def test_the_pattern_is_the_training_pre_tokenizer() -> None:
    assert bytelevel_valid.PROJECT_PATTERN == PRETOKEN_PATTERN


BASES = [
    b"",
    b"pa",
    b".pa",
    b" ite",
    b"self",
    b"x1",
    b"12",
    b" 3",
    b"(",
    b"((",
    b" (",
    b" ",
    b"  ",
    b"x ",
    b"\n",
    b"\n   ",
    b"\n\n",
    b" \n",
    b"\t",
    b"__init",
    b"caf\xc3\xa9",
    b"caf\xc3",  # inside a character: the slow path
    b"\xa9x",
    b"\xe2\x82\xac",
    b"x = ",
    b"):\n        ",
    b"x <",
    b"<|endof",  # an added token's text begun: only tokens that could end it are encoded
    b"<fim_middle",
    b"a<fim_middle>",  # one whole: everything is encoded
]


@pytest.fixture(scope="module")
def small_bpe() -> Tokenizer:
    """The project's tokenizer recipe, trained on a few KB of our own code."""
    root = Path(bytelevel_valid.__file__).parent
    text = "".join(p.read_text() for p in sorted(root.glob("*.py")))[:40_000] + " é€λ ¡"
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def test_small_bpe_extensions_equal_the_definition(small_bpe: Tokenizer) -> None:
    tok = HFByteTokenizer(small_bpe)
    index = ValidityIndex(tok)
    assert index.tree is not None and (index.shape_id >= 0).mean() > 0.9
    for base in BASES:
        check(tok, index, base)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.text(st.sampled_from("abse_l1 .()=:\n\té€"), max_size=8))
def test_small_bpe_on_random_bases(small_bpe: Tokenizer, base: str) -> None:
    tok = HFByteTokenizer(small_bpe)
    check(tok, ValidityIndex(tok), base.encode())


def test_release_tokenizer(release_model_dir: Path) -> None:
    lm = OnnxDecoder(release_model_dir)
    tok = HFByteTokenizer(lm.tokenizer, lm.token_bytes, lm.special_ids)
    index = ValidityIndex(tok)
    assert (index.shape_id[[bool(b) for b in tok.token_bytes]] >= 0).mean() > 0.99
    for base in [
        b".pa",
        b" ite",
        b"\n    ",
        b"assertEq",
        b"(ar",
        b" 1",
        b"<fim_middle",
        b"caf\xc3\xa9",
    ]:
        check(tok, index, base)
