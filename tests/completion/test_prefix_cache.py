"""Reusing the last prompt's key/value cache gives the same answers as starting afresh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fillpoint.completion import decoding
from fillpoint.completion.runtime import OnnxDecoder, stops_with
from fillpoint.completion.types import Cancelled, CancelToken


def test_fit_window_start_moves_in_steps() -> None:
    ids = list(range(1000))
    step = decoding.WINDOW_STEP
    starts = {decoding._fit(ids[:n], 300)[0] for n in range(300, 300 + step)}
    assert starts <= {0, step}  # a window step of keystrokes, at most one jump
    for n in (10, 300, 301, 999):
        window = decoding._fit(ids[:n], 300)
        assert len(window) <= 300 and window == ids[n - len(window) : n]
        assert window[0] % step == 0 or n <= 300
    for budget in (20, 45, 100):  # a small window still keeps at least half of itself
        for n in range(budget, 400, 7):
            assert budget // 2 <= len(decoding._fit(ids[:n], budget)) <= budget


def test_prefill_matches_fresh_run(tiny_fp32_model_dir: Path) -> None:
    # fp32: int8 dynamic quantization scales activations per call, so chunks differ slightly
    lm = OnnxDecoder(tiny_fp32_model_dir)
    cache = decoding.PrefixCache(lm)
    text = "def area(width, height):\n    return width * height\n\n\nprint(area("
    ids = lm.encode(text)
    for cut in (len(ids) - 6, len(ids) - 3, len(ids) - 3, len(ids) - 1, len(ids)):
        got, present = cache.prefill(ids[:cut])
        want, _ = lm.step(np.asarray([ids[:cut]]), lm.empty_past(1))
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert present.shape[4] == cut
    # an edit in the middle: only the common prefix is reused
    edited = ids[:5] + ids[7:]
    got, _ = cache.prefill(edited)
    want, _ = lm.step(np.asarray([edited]), lm.empty_past(1))
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_stopped_call_keeps_the_prompt_it_would_have_replaced(tiny_fp32_model_dir: Path) -> None:
    lm = OnnxDecoder(tiny_fp32_model_dir)
    cache = decoding.PrefixCache(lm)
    ids = lm.encode("def area(width, height):\n    return width * height\n")
    cache.prefill(ids[:-4])
    stopped = CancelToken()
    stopped.cancel()
    with pytest.raises(Cancelled), stops_with(stopped):
        cache.prefill(ids)
    assert cache.cached(ids) == len(ids) - 4
    got, _ = cache.prefill(ids)
    want, _ = lm.step(np.asarray([ids]), lm.empty_past(1))
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_interleaved_prompts_each_run_only_their_new_tokens(tiny_fp32_model_dir: Path) -> None:
    lm = OnnxDecoder(tiny_fp32_model_dir)
    cache = decoding.PrefixCache(lm, entries=2)
    ran: list[int] = []
    step = lm.step
    lm.step = lambda ids, past: ran.append(ids.shape[1]) or step(ids, past)  # type: ignore[method-assign]
    plain = lm.encode("import os\n\nfor name in os.listdir('.'):\n    print(name)\n")
    fim = [*lm.fim_ids[:1], *plain, *lm.fim_ids[1:]]  # another prompt kind, its own entry
    for cut in (10, 14, 18):
        for ids in (plain[:cut], fim[: cut + 1]):
            got, _ = cache.prefill(ids)
            want, _ = step(np.asarray([ids]), lm.empty_past(1))
            np.testing.assert_allclose(got, want, atol=1e-4)
    assert ran == [10, 11, 4, 4, 4, 4]  # after the first two, only the 4 new tokens run
    cache.prefill(lm.encode("x = 1"))  # a third prompt pushes out the oldest entry
    cache.prefill(plain[:18])
    assert ran[-1] == 18


def test_warm_runs_the_window_in_chunks_and_stops_when_cancelled(
    tiny_fp32_model_dir: Path,
) -> None:
    lm = OnnxDecoder(tiny_fp32_model_dir)
    cache = decoding.PrefixCache(lm)
    ran: list[int] = []
    step = lm.step
    lm.step = lambda ids, past: ran.append(ids.shape[1]) or step(ids, past)  # type: ignore[method-assign]
    text = "".join(f"value_{i} = compute(value_{i - 1}, {i})\n" for i in range(1, 40))
    prompt = decoding.heal(lm, text, "healing")
    window = decoding._window(lm, prompt.ids, decoding.ROOM)
    chunk = 16
    assert len(window) > 2 * chunk

    cancel = CancelToken()
    cancel.cancel()
    try:
        decoding.warm(lm, prompt, cache, cancel, chunk)
    except Cancelled:
        pass
    assert ran == [chunk]  # one chunk, then it noticed
    assert cache.cached(window) == chunk  # and kept what it ran

    assert decoding.warm(lm, prompt, cache, chunk=chunk) == len(window) - chunk
    assert max(ran) <= chunk and sum(ran) == len(window)
    assert decoding.warm(lm, prompt, cache, chunk=chunk) == 0  # warm already: nothing runs
    got, _ = cache.prefill(window)  # a request at this prompt runs nothing either
    assert sum(ran) == len(window)
    want, _ = step(np.asarray([window]), lm.empty_past(1))
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_watcher_sees_every_token_run_with_the_logits_after_it(
    tiny_fp32_model_dir: Path,
) -> None:
    lm = OnnxDecoder(tiny_fp32_model_dir)
    ids = lm.encode("import os\n\nfor name in os.listdir('.'):\n    print(name)\n")
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    watched, plain = decoding.PrefixCache(lm), decoding.PrefixCache(lm)
    watched.watch(lambda tokens, logits: seen.append((tokens, logits)))
    for cut in (9, 9, 15, len(ids)):  # the repeat runs nothing: nothing is shown
        got, _ = watched.prefill(ids[:cut])
        np.testing.assert_allclose(got, plain.prefill(ids[:cut])[0], atol=1e-5)
    assert [len(tokens) for tokens, _ in seen] == [9, 6, len(ids) - 15]
    tokens = np.concatenate([tokens for tokens, _ in seen])
    logits = np.concatenate([logits for _, logits in seen])
    assert tokens.tolist() == ids
    fresh, _ = lm.run(np.asarray([ids]), lm.empty_past(1))
    np.testing.assert_allclose(logits, fresh[0], atol=1e-4)
    watcher = watched._watchers[0]
    watched.unwatch(watcher)
    watched.prefill(ids + ids[:3])
    assert len(seen) == 3


def test_a_decoding_cut_short_on_a_long_new_prompt_runs_one_chunk_and_keeps_it(
    tiny_fp32_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoding, "PREFILL_CHUNK", 16)  # the tiny model's window is short
    lm = OnnxDecoder(tiny_fp32_model_dir)
    cache, vocab = decoding.PrefixCache(lm), decoding.Vocab(lm)
    ran: list[int] = []
    step = lm.step
    lm.step = lambda ids, past: ran.append(ids.shape[1]) or step(ids, past)  # type: ignore[method-assign]
    text = "".join(f"value_{i} = compute(value_{i - 1}, {i})\n" for i in range(1, 40))
    prompt = decoding.heal(lm, text, "healing")
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        decoding.greedy_line(lm, vocab, prompt, 8, cancel, cache)
    assert ran == [decoding.PREFILL_CHUNK]  # one chunk, then it noticed, and kept it
    window = decoding._window(lm, prompt.ids, 8)
    assert cache.cached(window) == decoding.PREFILL_CHUNK
    want = decoding.greedy_line(lm, vocab, prompt, 8, None, decoding.PrefixCache(lm))
    assert decoding.greedy_line(lm, vocab, prompt, 8, None, cache) == want
