"""Exact byte-level probabilities: the fast algorithm against brute force on toy BPEs, and its
tokenizer plumbing (trie, bytes that are not UTF-8, the ONNX adapter) on a real `tokenizers` BPE."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, pre_tokenizers, trainers

from fillpoint.completion import bytelevel
from fillpoint.completion.bytelevel import (
    END,
    WORD_BYTES,
    ByteLevel,
    VocabTrie,
    cut_point,
    ensemble_complete_bytes,
    ensemble_next_byte,
    strings_next_byte,
    with_strings,
)
from fillpoint.completion.bytelevel_base import Cover, State, StatelessScorer
from fillpoint.completion.bytelevel_onnx import ByteLevelDecoder, HFByteTokenizer, OnnxScorer
from fillpoint.completion.bytelevel_reference import (
    NO_LOOKAHEAD,
    TOY_PATTERN,
    HashLM,
    ToyBPE,
    brute_force_covers,
    brute_force_next_byte,
    brute_force_prefix_prob,
)
from fillpoint.completion.decoding import PREFILL_CHUNK
from fillpoint.completion.runtime import byte_decoder
from fillpoint.completion.types import Cancelled, CancelToken
from fillpoint.training.tokenizer import (
    EOT,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    SPECIAL_TOKENS,
    new_tokenizer,
)

ALPHABET = b"ab1. \n"  # letters, a digit, punctuation and whitespace: every pre-token class
# Without the `\s+(?!\S)` lookahead (NO_LOOKAHEAD), pre-token boundaries never move and valid
# encodings are closed under prefixes; with it (the project's regex) a whitespace run can split.
FIXED = ToyBPE(
    ALPHABET,
    [(b"a", b"b"), (b" ", b"a"), (b"b", b"a"), (b" a", b"b"), (b"\n", b" "), (b" ", b" ")]
    + [(b"a", b"1"), (b".", b"."), (b"ab", b"a")],
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.lists(st.sampled_from(ALPHABET), max_size=5).map(bytes)
seeds = st.integers(0, 2**16)


@st.composite
def toys(draw: st.DrawFn, pattern: bytes = TOY_PATTERN) -> ToyBPE:
    """A toy BPE with up to 8 random merges of at most 4 bytes (some never apply)."""
    tokens = [bytes([c]) for c in ALPHABET]
    merges = []
    for _ in range(draw(st.integers(0, 8))):
        a, b = draw(st.sampled_from(tokens)), draw(st.sampled_from(tokens))
        if a + b not in tokens and len(a + b) <= 4:
            merges.append((a, b))
            tokens.append(a + b)
    return ToyBPE(ALPHABET, merges, pattern)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300)


# ---------------------------------------------------------------------------- toy vs brute force


@FAST
@given(toys(), seeds, texts)
def test_prob_of_prefix_equals_brute_force_marginal(tok: ToyBPE, seed: int, x: bytes) -> None:
    lm = HashLM(tok, seed)
    assert close(ByteLevel(tok, lm).prob_of_prefix(x), brute_force_prefix_prob(tok, lm, x))


@FAST
@given(toys(), seeds, texts)
def test_next_byte_distribution_is_exact_and_sums_to_one(tok: ToyBPE, seed: int, x: bytes) -> None:
    lm = HashLM(tok, seed)
    bl = ByteLevel(tok, lm)
    want, mass = brute_force_next_byte(tok, lm, x)
    assume(mass > 0)  # x has probability > 0
    s = bl.start(x)
    dist = bl.next_distributions([s])[0]
    assert abs(dist.sum() - 1.0) < 1e-9
    assert np.abs(dist - want).max() < 1e-9
    # the model only generates canonical encodings: P(x + any byte) + P(x, end) = P(x)
    assert close(math.exp(s.log_mass), math.exp(s.logq))
    assert close(bl.prob_of_prefix(x), mass)


@FAST
@given(toys(), seeds, texts)
def test_next_byte_distribution_sums_to_one_for_a_non_canonical_model(
    tok: ToyBPE, seed: int, x: bytes
) -> None:
    dist = ByteLevel(tok, HashLM(tok, seed, canonical=False)).next_byte_distribution(x)
    assert dist.shape == (END + 1,) and abs(dist.sum() - 1.0) < 1e-9


@FAST
@given(st.sampled_from([TOY_PATTERN, NO_LOOKAHEAD]).flatmap(toys), texts)
def test_cover_set_equals_brute_force_enumeration(tok: ToyBPE, x: bytes) -> None:
    covers = ByteLevel(tok, HashLM(tok, canonical=False)).covers(x)
    assert len(covers) == len(set(covers))
    assert set(covers) == brute_force_covers(tok, x)
    for c in covers:
        assert tok.is_valid(c) and tok.decode(c).startswith(x)
        assert len(tok.decode(c[:-1])) < len(x)


@FAST
@given(st.sampled_from([TOY_PATTERN, NO_LOOKAHEAD]).flatmap(toys), texts)
def test_design_formula_holds_when_valid_encodings_are_prefix_closed(tok: ToyBPE, x: bytes) -> None:
    # DESIGN.md's shortcut for BPE: encode(x[:i]) + [t], kept if valid
    formula = {
        (*tok.encode(x[:i]), t)
        for i in range(len(x))
        for t, tb in enumerate(tok.token_bytes)
        if tb.startswith(x[i:]) and tok.is_valid([*tok.encode(x[:i]), t])
    }
    covers = set(ByteLevel(tok, HashLM(tok, canonical=False)).covers(x))
    assert formula <= covers
    if tok.pattern.pattern == NO_LOOKAHEAD:
        assert formula == covers


def test_a_whitespace_run_split_by_a_word_gives_a_cover_with_an_invalid_head() -> None:
    tok = ToyBPE(ALPHABET, [(b" ", b"\n")])
    covers = ByteLevel(tok, HashLM(tok)).covers(b" \na")
    space, newline, a = (tok.ids[c] for c in (b" ", b"\n", b"a"))
    assert (space, newline, a) in covers
    assert not tok.is_valid([space, newline])  # " \n" alone is one token


@FAST
@given(toys(), seeds, texts)
def test_cut_point_never_changes_the_answer(tok: ToyBPE, seed: int, x: bytes) -> None:
    bl = ByteLevel(tok, HashLM(tok, seed))
    assert close(bl.prob_of_prefix(x), bl.prob_of_prefix(x, cut=0))
    assert set(bl.covers(x)) == set(bl.covers(x, cut=0))
    a, b = bl.start(x), bl.start(x, cut=0)
    if np.isfinite(b.logq):  # without a cut, a prefix of zero probability has no distribution
        da, db = bl.next_distributions([a, b])
        assert np.abs(da - db).max() < 1e-9


@FAST
@given(toys(), seeds, texts, st.sampled_from(ALPHABET))
def test_advancing_by_a_byte_equals_starting_afresh(
    tok: ToyBPE, seed: int, x: bytes, b: int
) -> None:
    bl = ByteLevel(tok, HashLM(tok, seed))
    s = bl.start(x)
    step, fresh = bl.advance(s, b), bl.start(x + bytes([b]), cut=s.cut)
    assert step.canon == fresh.canon
    got = {c.ids: c.logq for c in step.covers}
    want = {c.ids: c.logq for c in fresh.covers}
    assert got.keys() == want.keys()
    assert all(got[k] == want[k] or close(math.exp(got[k]), math.exp(want[k])) for k in got)


@FAST
@given(toys(), seeds, texts)
def test_greedy_first_byte_is_the_brute_force_argmax(tok: ToyBPE, seed: int, x: bytes) -> None:
    lm = HashLM(tok, seed)
    assume(brute_force_prefix_prob(tok, lm, x) > 0)
    want, _ = brute_force_next_byte(tok, lm, x)
    top2 = np.sort(want)[-2:]
    assume(top2[1] - top2[0] > 1e-9)  # no tie
    out = ByteLevel(tok, lm).complete_bytes(x, stop=lambda o: True, max_bytes=1, eps=0.0)
    best = int(np.argmax(want))
    assert out == (b"" if best == END else bytes([best]))


@FAST
@given(seeds, texts)
def test_identifier_probabilities_are_exact(seed: int, x: bytes) -> None:
    lm = HashLM(FIXED, seed)
    p_x = brute_force_prefix_prob(FIXED, lm, x)
    assume(p_x > 0)
    found = ByteLevel(FIXED, lm).complete_identifier(x, k=4, max_bytes=3)
    assert [p for _, p in found] == sorted((p for _, p in found), reverse=True)
    non_word = np.asarray([b not in WORD_BYTES for b in range(END + 1)])
    for y, p in found:
        assert all(b in WORD_BYTES for b in y)
        dist, mass = brute_force_next_byte(FIXED, lm, x + y)
        assert close(p, dist[non_word].sum() * mass / p_x)


@FAST
@given(seeds, texts)
def test_identifiers_from_healed_covers_are_exact_for_a_canonical_model(
    seed: int, x: bytes
) -> None:
    """Covers, then tokens: with every branch kept, each name's probability is the exact
    byte-level one (the model generates valid encodings only)."""
    lm = HashLM(FIXED, seed)
    p_x = brute_force_prefix_prob(FIXED, lm, x)
    assume(p_x > 0)
    bl = ByteLevel(FIXED, lm)
    found = bl.complete_identifier_healed(x, k=4, beam=len(FIXED.token_bytes) ** 3, max_bytes=3)
    assert [p for _, p in found] == sorted((p for _, p in found), reverse=True)
    exact = dict(bl.complete_identifier(x, k=64, beam=64, max_bytes=3))
    assert found and all(y in exact and close(p, exact[y]) for y, p in found)
    if not x or x[-1] not in WORD_BYTES:
        assert all(y and not y[:1].isdigit() for y, _ in found)  # a name starts here


def healed(seed: int, x: bytes) -> tuple[HashLM, ByteLevel, State, Cover]:
    """A toy model, its byte-level search, the state after x and the cover that holds at
    least half of its mass (hypothesis rejects x where no cover does)."""
    lm = HashLM(FIXED, seed)
    bl = ByteLevel(FIXED, lm)
    s = bl.start(x)
    assume(s.covers)
    top = max(s.covers, key=lambda c: c.logq)
    assume(math.exp(top.logq - s.logq) >= 0.5)
    return lm, bl, s, top


@FAST
@given(seeds, texts)
def test_greedy_leaves_byte_mode_once_one_cover_holds_the_mass(seed: int, x: bytes) -> None:
    lm, bl, s, top = healed(seed, x)
    out = bl.complete_bytes(x, stop=lambda o: len(o) >= 8, max_bytes=8, eps=0.5)
    # the rest of the winning cover's last token, then greedy tokens from that cover
    want, ids = FIXED.token_bytes[top.ids[-1]][len(x) - top.start :], [*s.prefix, *top.ids]
    while len(want) < 8:
        t = int(np.argmax(lm.next_logprobs(ids)))
        if t in FIXED.special_ids:
            break
        want, ids = want + FIXED.token_bytes[t], [*ids, t]
    assert out == want[:8]


def best_token_path(tok: ToyBPE, lm: HashLM, ids: list[int], out: bytes, limit: int) -> bytes:
    """Brute force: the text of the likeliest token path from `ids` until the end of text or
    `limit` bytes (sum of log-probs), the rules of the token-mode beam."""
    best = (-math.inf, out)

    def walk(ids: list[int], text: bytes, score: float) -> None:
        nonlocal best
        for t, lp in enumerate(lm.next_logprobs(ids)):
            if not np.isfinite(lp):
                continue
            if t in tok.special_ids:
                best = max(best, (score + lp, text))
            elif len(text + tok.token_bytes[t]) >= limit:
                best = max(best, (score + lp, (text + tok.token_bytes[t])[:limit]))
            else:
                walk([*ids, t], text + tok.token_bytes[t], score + lp)

    walk(ids, out, 0.0)
    return best[1]


@FAST
@given(seeds, texts)
def test_a_wide_token_beam_finds_the_likeliest_continuation(seed: int, x: bytes) -> None:
    lm, bl, s, top = healed(seed, x)
    first = FIXED.token_bytes[top.ids[-1]][len(x) - top.start :]
    limit = len(first) + 4  # four more tokens at most: every path fits a beam of V^4
    width = len(FIXED.token_bytes) ** 4
    out = bl.complete_bytes(x, lambda o: len(o) >= limit, limit, eps=0.5, width=width)
    assert out == best_token_path(FIXED, lm, [*s.prefix, *top.ids], first, limit)


def test_ensemble_averages_models_with_different_vocabularies() -> None:
    other = ToyBPE(ALPHABET, [(b"b", b"b"), (b" ", b"b"), (b"1", b"1"), (b"a", b"a")])
    pairs = [(FIXED, HashLM(FIXED, 1)), (other, HashLM(other, 2))]
    x = b"ab "
    dists = [ByteLevel(t, m).next_byte_distribution(x) for t, m in pairs]
    avg = ensemble_next_byte(dists, [0.25, 0.75])
    assert abs(avg.sum() - 1.0) < 1e-12
    assert np.allclose(avg, 0.25 * dists[0] + 0.75 * dists[1])
    want = sum(
        w * brute_force_next_byte(t, m, x)[0] for w, (t, m) in zip([0.25, 0.75], pairs, strict=True)
    )
    out = ensemble_complete_bytes(
        [(ByteLevel(t, m), ()) for t, m in pairs], x, lambda o: True, 1, [0.25, 0.75]
    )
    best = int(np.argmax(want))
    assert out == (b"" if best == END else bytes([best]))


def test_next_byte_of_a_distribution_over_strings() -> None:
    names = [(b"ab", 0.5), (b"a", 0.2), (b"ba", 0.1), (b"abb", 0.2)]
    d = strings_next_byte(names, b"a")
    assert d is not None and d.sum() == pytest.approx(1.0)
    assert d[ord("b")] == pytest.approx(0.7 / 0.9) and d[END] == pytest.approx(0.2 / 0.9)
    first = strings_next_byte(names, b"")
    assert first is not None and first[ord("a")] == pytest.approx(0.9)
    assert strings_next_byte(names, b"c") is None  # no string goes on from there


@pytest.mark.parametrize("x", [b"a", b"ab", b" a", b"ab.a"])
def test_identifiers_from_the_blended_distributions_score_their_product(x: bytes) -> None:
    """complete_identifier with a blend: each continuation's probability is the product of
    the blended next-byte distributions along it, and the blend is a distribution."""
    lm = HashLM(FIXED, 7)
    bl = ByteLevel(FIXED, lm)
    names = [(b"b", 0.4), (b"ba", 0.3), (b"", 0.2), (b"a1", 0.1)]
    blend = with_strings(names, 0.5)
    found = bl.complete_identifier(x, k=4, max_bytes=3, blend=blend)
    assert found
    non_word = np.asarray([b not in WORD_BYTES for b in range(END + 1)])
    for y, p in found:
        want = 1.0
        for i in range(len(y) + 1):
            d = blend(y[:i], bl.next_byte_distribution(x + y[:i]))
            assert d.sum() == pytest.approx(1.0)
            want *= d[y[i]] if i < len(y) else d[non_word].sum()
        assert p == pytest.approx(want, rel=1e-9)
    alone = dict(bl.complete_identifier(x, k=4, max_bytes=3))
    assert dict(found) != alone  # the names moved the scores


# ---------------------------------------------------------------------------- a real tokenizer


@pytest.fixture(scope="module")
def real_tok() -> Tokenizer:
    """A byte-level BPE with the project's pre-tokenizer, trained on a few KB of our own code."""
    root = Path(bytelevel.__file__).parent
    text = "".join(p.read_text() for p in sorted(root.glob("*.py")))[:30_000]
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer=trainer)
    return tok


code = st.text(st.sampled_from("abcdefself_xyz0123456789 .()=:,\n\t'\"éλ€"), max_size=24)


def test_trie_lookups_match_a_linear_scan(real_tok: Tokenizer) -> None:
    tok = HFByteTokenizer(real_tok)
    trie = VocabTrie(tok.token_bytes)
    probes = {b"", b"\xff", b"\xc3", b"se", b"self", b" ", b"\n   ", b"zzzz"}
    probes |= {tb[:k] for tb in tok.token_bytes for k in (1, 2, 3)}
    for p in probes:
        scan = sorted(i for i, tb in enumerate(tok.token_bytes) if tb and tb.startswith(p))
        assert sorted(trie.starting_with(p).tolist()) == scan, p


@FAST
@given(code)
def test_bytes_path_agrees_with_tokenizers_on_text(real_tok: Tokenizer, text: str) -> None:
    tok = HFByteTokenizer(real_tok)
    data = text.encode()
    assert tok._encode_slow(data) == real_tok.encode(text, add_special_tokens=False).ids
    assert tok.encode(data) == tok.encode_batch([data])[0]
    assert tok.decode(tok.encode(data)) == data
    # an incomplete character still gets an encoding that spells it
    if data and data[-1] >= 0x80:
        assert tok.decode(tok.encode(data[:-1])) == data[:-1]


@FAST
@given(code)
def test_real_covers_are_valid_and_independent_of_the_cut(real_tok: Tokenizer, text: str) -> None:
    tok = HFByteTokenizer(real_tok)
    bl = ByteLevel(tok, HashLM(tok, canonical=False))
    x = text.encode()
    covers = bl.covers(x)
    assert set(covers) == set(bl.covers(x, cut=0))
    assert 0 <= cut_point(tok, x) <= max(0, len(x) - 1)
    for c in covers:
        assert tok.is_valid(c)
        assert tok.decode(c).startswith(x) and len(tok.decode(c[:-1])) < len(x)


short_code = st.tuples(st.text(st.sampled_from("ae_1 .(\n\té€"), max_size=3), st.booleans()).map(
    lambda tc: tc[0].encode()[: -1 if tc[1] else None]  # sometimes stop inside a character
)


@settings(max_examples=12, deadline=None)
@given(short_code, seeds)
def test_real_tokenizer_against_brute_force(real_tok: Tokenizer, x: bytes, seed: int) -> None:
    tok = HFByteTokenizer(real_tok)
    lm = HashLM(tok, seed)
    bl = ByteLevel(tok, lm)
    assert set(bl.covers(x)) == brute_force_covers(tok, x)
    assert close(bl.prob_of_prefix(x), brute_force_prefix_prob(tok, lm, x))


class FakeSession:
    """An ONNX session stand-in: the 'KV cache' stores the ids, logits come from a HashLM."""

    def __init__(self, lm: HashLM) -> None:
        self.lm = lm

    def run(self, _: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ids, past = feeds["input_ids"], feeds["past"]  # (B, T), (1, 2, B, 1, P, 1)
        full = np.concatenate([past[0, 0, :, 0, :, 0].astype(np.int64), ids], axis=1)
        P = past.shape[4]
        mask = feeds.get("attn_mask")  # (B, T, P+T): what each new token sees, in cache order
        logits = np.stack(
            [
                [
                    self.lm.next_logprobs(row[: P + k + 1] if mask is None else row[mask[b, k]])
                    for k in range(ids.shape[1])
                ]
                for b, row in enumerate(full)
            ]
        )
        new = np.zeros((1, 2, *ids.shape[:1], 1, ids.shape[1], 1), np.float32)
        new[0, :, :, 0, :, 0] = ids
        return [logits.astype(np.float32), np.concatenate([past, new], axis=4)]


class FakeDecoder:
    """What ByteLevelDecoder needs of an OnnxDecoder."""

    def __init__(self, tok: Tokenizer, block_size: int = 256) -> None:
        self.tokenizer, self.block_size = tok, block_size
        self.n_vocab = tok.get_vocab_size()
        specials = [EOT, "<|pad|>", FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE]
        self.special_ids = {tok.token_to_id(t) for t in specials}
        self.eot_token = tok.token_to_id(EOT)
        self.fim_ids = tuple(tok.token_to_id(t) for t in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE))
        dec = byte_decoder()
        self.token_bytes = [
            b"" if i in self.special_ids else bytes(dec[c] for c in tok.id_to_token(i))
            for i in range(self.n_vocab)
        ]
        self.hash_lm = HashLM(HFByteTokenizer(tok), seed=5, canonical=False)
        self.session = FakeSession(self.hash_lm)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def empty_past(self, batch: int = 1) -> np.ndarray:
        return np.zeros((1, 2, batch, 1, 0, 1), np.float32)

    def run(
        self,
        ids: np.ndarray,
        past: np.ndarray,
        mask: np.ndarray | None = None,
        pos: np.ndarray | None = None,
        last: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        feed = {"input_ids": np.ascontiguousarray(ids, np.int64), "past": past}
        if mask is not None:
            feed["attn_mask"] = mask
        logits, present = self.session.run(None, feed)
        return logits[:, -(last or ids.shape[1]) :], present


def test_onnx_scorer_batches_to_the_same_rows(real_tok: Tokenizer) -> None:
    lm = FakeDecoder(real_tok)
    fast, slow = OnnxScorer(lm, max_batch=3), StatelessScorer(lm.hash_lm)
    prefix = (lm.eot_token, 50, 60)
    tails = [(), (1,), (1, 2, 3), (7, 8), (1, 2), (9,), (10, 11, 12, 13)]
    got, want = fast.rows(prefix, tails), slow.rows(prefix, tails)
    assert set(want) <= set(got)
    for key in want:
        assert np.allclose(got[key], want[key], atol=1e-5), key
    calls = fast.calls
    fast.rows(prefix, tails)  # cached: no model call
    assert fast.calls == calls
    stream = fast.stream(prefix, (1, 2))
    stream.push(3)
    assert np.allclose(stream.row, want[(1, 2, 3)], atol=1e-5)


def test_onnx_scorer_warms_a_chunk_per_call_and_keeps_what_ran_when_cancelled(
    real_tok: Tokenizer,
) -> None:
    lm = FakeDecoder(real_tok)
    scorer, slow = OnnxScorer(lm), StatelessScorer(lm.hash_lm)
    ran: list[int] = []
    run = scorer._run
    scorer._run = lambda ids, past, last=None: ran.append(ids.size) or run(ids, past, last)  # type: ignore[method-assign]
    other = (lm.eot_token, 9, 8)  # another kind of prompt, kept throughout
    scorer.rows(other, [(1,)])
    prompt = (lm.eot_token, *range(20, 20 + 2 * PREFILL_CHUNK + 5))
    cancel = CancelToken()
    checks = iter([None, "stop"])

    def check() -> None:
        if next(checks):
            cancel.cancel()
        cancel.check()

    ran.clear()
    with pytest.raises(Cancelled):
        scorer.warm(prompt, check)  # stopped after its second chunk
    assert ran == [PREFILL_CHUNK, PREFILL_CHUNK]
    assert other in scorer._cache and len(scorer._cache) == 2  # one entry, grown in place
    rest = len(prompt) - 1 - 2 * PREFILL_CHUNK  # the end-of-text token was kept already
    ran.clear()
    assert scorer.warm(prompt) == rest  # only what had not run
    assert ran == [rest] and scorer.warm(prompt) == 0
    got, want = scorer.rows(prompt, [(3, 4)]), slow.rows(prompt, [(3, 4)])
    assert ran[1:] == [2]  # the prompt itself did not run again
    for key in want:
        assert np.allclose(got[key], want[key], atol=1e-5), key
    assert other in scorer._cache


def test_onnx_scorer_runs_a_moved_window_from_the_one_warmed_ahead(real_tok: Tokenizer) -> None:
    lm = FakeDecoder(real_tok)
    scorer, slow = OnnxScorer(lm, cached_prefixes=1), StatelessScorer(lm.hash_lm)
    ran: list[int] = []
    run = scorer._run
    scorer._run = lambda ids, past, last=None: ran.append(ids.size) or run(ids, past, last)  # type: ignore[method-assign]
    text = tuple(range(20, 20 + PREFILL_CHUNK + 40))
    now = (lm.eot_token, *text[: PREFILL_CHUNK + 30])
    scorer.warm(now)
    ahead = (lm.eot_token, *text[16 : PREFILL_CHUNK + 30])  # the window after 16 dropped
    cancel = CancelToken()

    def check() -> None:
        cancel.cancel()
        cancel.check()

    ran.clear()
    with pytest.raises(Cancelled):
        scorer.warm_ahead(ahead, check)  # stopped after its first chunk: that stays kept
    assert ran == [PREFILL_CHUNK] and now in scorer._cache  # the end-of-text token was kept
    assert scorer.warm_ahead(ahead) == len(ahead) - 1 - PREFILL_CHUNK
    assert scorer.warm_ahead(ahead) == 0 and now in scorer._cache  # the prompts' LRU is apart
    ran.clear()
    moved = (lm.eot_token, *text[16:])  # the user typed 10 more tokens: the window moved
    got, want = scorer.rows(moved, [(3, 4)]), slow.rows(moved, [(3, 4)])
    assert ran[0] == 10  # what was typed since, not the whole window
    for key in want:
        assert np.allclose(got[key], want[key], atol=1e-5), key
    assert not scorer._ahead  # its keys/values are the moved prompt's now


def test_split_ahead_is_the_window_the_prompt_moves_to(real_tok: Tokenizer) -> None:
    bl = ByteLevel(HFByteTokenizer(real_tok), HashLM(HFByteTokenizer(real_tok), seed=1))
    bl.window_step = 8
    x = b"".join(b"value_%d = compute(value_%d)\n" % (i, i) for i in range(30))
    _, whole, _ = bl.split(x)
    room = len(whole) - 3  # the prompt has moved once: a step of 8 dropped
    _, now, _ = bl.split(x, max_prefix=room)
    assert now == whole[8:]
    assert bl.split(x, max_prefix=room, ahead=2)[1] == ()  # 5 more tokens fit first
    soon = bl.split(x, max_prefix=room, ahead=6)[1]
    assert soon == whole[16:]
    tail = b"value_30 = compute(value_30)\n"
    moved = next(  # the first text after x whose window has moved
        w
        for i in range(len(tail))
        if (w := bl.split(x + tail[:i], max_prefix=room)[1])[:4] != now[:4]
    )
    assert moved[: len(soon)] == soon
    assert bl.split(x, ahead=6)[1] == ()  # no window: it never moves


def test_onnx_scorer_reuses_kept_keys_and_values(real_tok: Tokenizer) -> None:
    lm = FakeDecoder(real_tok)
    fast, slow = OnnxScorer(lm), StatelessScorer(lm.hash_lm)
    ran: list[int] = []
    run = fast._run
    fast._run = lambda ids, past, last=None: ran.append(ids.size) or run(ids, past, last)  # type: ignore[method-assign]
    first, second = (lm.eot_token, 50, 60, 70), (lm.eot_token, 50, 60, 71, 72)
    fast.rows(first, [(1,)])
    ran.clear()
    beams = [(3, 4, 5), (3, 4, 6), (3, 7)]  # a shared start (3,), run once, then kept
    for prefix, tails in [(second, beams), (second, [(3, 4, 5, 8), (3, 9)]), (second, [(3, 4)])]:
        got, want = fast.rows(prefix, tails), slow.rows(prefix, tails)
        for key in want:
            assert np.allclose(got[key], want[key], atol=1e-5), key
    # the second prompt ran from the first one's keys/values: only its 2 new tokens; the
    # beams from their shared start: (3,), then 2 + 2 + 1 padded to 3 x 2; then 2 x 3
    assert ran == [2, 1, 6, 6]


def test_onnx_scorer_runs_tails_as_a_tree_on_one_shared_cache(real_tok: Tokenizer) -> None:
    lm = FakeDecoder(real_tok)
    lm.tree_inputs = True  # type: ignore[attr-defined]
    fast, slow = OnnxScorer(lm), StatelessScorer(lm.hash_lm)
    batches: list[int] = []
    run = lm.run
    lm.run = lambda ids, past, *a, **k: batches.append(past.shape[2]) or run(ids, past, *a, **k)  # type: ignore[method-assign]
    prefix = (lm.eot_token, 50, 60, 70)
    tails = [(3, 4, 5), (3, 4, 6), (3, 7), (8,), (9, 10, 11, 12)]
    got, want = fast.rows(prefix, tails), slow.rows(prefix, tails)
    assert set(want) <= set(got)
    for key in want:
        assert np.allclose(got[key], want[key], atol=1e-5), key
    assert set(batches) == {1}  # the prefix's cache is never copied per tail


def test_onnx_scorer_tree_runs_only_tokens_no_earlier_call_ran(real_tok: Tokenizer) -> None:
    lm = FakeDecoder(real_tok)
    lm.tree_inputs = True  # type: ignore[attr-defined]
    fast, slow = OnnxScorer(lm, tree_room=6), StatelessScorer(lm.hash_lm)
    ran: list[int] = []
    run = lm.run
    lm.run = lambda ids, *a, **k: ran.append(ids.shape[1]) or run(ids, *a, **k)  # type: ignore[method-assign]
    prefix = (lm.eot_token, 50, 60, 70)
    steps = [
        [(3, 4), (3, 7)],  # (3,), (3, 4), (3, 7): three tokens
        [(3, 4, 5), (3, 7, 8), (9,)],  # one new token each
        [(3, 4, 5, 6)],  # one more: the tree holds 7 tokens past its room of 6
        [(3, 4, 5, 6, 1)],  # so the tree starts again from the prefix: all five run
    ]
    for tails in steps:
        got, want = fast.rows(prefix, tails), slow.rows(prefix, tails)
        for key in want:
            assert np.allclose(got[key], want[key], atol=1e-5), key
    assert ran[1:] == [3, 3, 1, 5]  # (the first call is the prefix's own)


def test_onnx_scorer_bounds_its_rows_without_losing_a_kept_starts_rows(
    real_tok: Tokenizer,
) -> None:
    lm = FakeDecoder(real_tok)
    fast, slow = OnnxScorer(lm, max_rows=3), StatelessScorer(lm.hash_lm)
    prefix = (lm.eot_token, 50, 60, 70)
    for tails in ([(3, 4, 5), (3, 4, 6)], [(3, 4, 7)], [(3, 8)]):  # (3, 4) is a kept start
        got, want = fast.rows(prefix, tails), slow.rows(prefix, tails)
        for key in want:
            assert np.allclose(got[key], want[key], atol=1e-5), key


def test_decoder_entry_point(real_tok: Tokenizer) -> None:
    lm = FakeDecoder(real_tok)
    dec = ByteLevelDecoder(lm, tol=0.0)  # type: ignore[arg-type]
    prefix = "def main():\n    self.pa"
    found = dec.complete_identifier(prefix, k=5)
    assert 0 < len(found) <= 5
    assert [p for _, p in found] == sorted((p for _, p in found), reverse=True)
    assert sum(p for _, p in found) <= 1 + 1e-9
    assert all(w.isidentifier() or w == "" or w.isalnum() for w, _ in found)
    # the same search through the stateless reference path gives the same probabilities
    ref = ByteLevel(dec.tok, lm.hash_lm).complete_identifier_healed(
        prefix.encode(), 5, (lm.eot_token,)
    )
    assert [w.encode() for w, _ in found] == [y for y, _ in ref]
    assert np.allclose([p for _, p in found], [p for _, p in ref], rtol=1e-4)
    line = dec.complete_line(prefix, "\n\nmain()\n", max_tokens=8)
    assert "\n" not in line
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        dec.complete_line(prefix, None, max_tokens=8, cancel=cancel)
