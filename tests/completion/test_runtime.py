"""The ONNX runtime: loading and verifying a release, vocabulary bytes, cached steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fillpoint.completion.runtime import (
    OnnxDecoder,
    byte_decoder,
    split_point,
    stopping,
    stops_with,
)
from fillpoint.completion.types import Cancelled, CancelToken, EngineError

pytestmark = pytest.mark.slow

CODE = st.lists(
    st.sampled_from(["def ", "self", ".", "x", " = ", "(", "):\n", "    ", "'é'", "😀", "\t"])
    | st.text(max_size=6),
    max_size=20,
).map("".join)


@pytest.fixture(scope="module")
def lm(tiny_model_dir: Path) -> OnnxDecoder:
    """The tiny release on one onnxruntime thread."""
    return OnnxDecoder(tiny_model_dir, threads=1)


@pytest.fixture
def release(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny release that a test may damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "release"))


def test_byte_decoder_is_a_bijection_onto_bytes() -> None:
    table = byte_decoder()
    assert len(table) == 256 and sorted(table.values()) == list(range(256))
    assert table["!"] == ord("!") and table["Ġ"] == ord(" ") and table["Ċ"] == ord("\n")


def test_loads_the_release(lm: OnnxDecoder, tiny_model_dir: Path) -> None:
    manifest = json.loads((tiny_model_dir / "manifest.json").read_text())
    assert (lm.n_layer, lm.n_head, lm.head_dim, lm.block_size, lm.n_vocab) == (2, 2, 32, 128, 512)
    assert lm.eot_token == 0 and lm.fim_ids == (2, 3, 4) and lm.special_ids == {0, 1, 2, 3, 4}
    assert lm.info.name == "fillpoint-pycoder"
    assert lm.info.parameters == manifest["parameters"] > 0
    assert lm.info.folder == tiny_model_dir and lm.info.block_size == 128
    assert len(lm.token_bytes) == len(lm.token_text) == 512


def test_token_bytes_match_the_tokenizer(lm: OnnxDecoder) -> None:
    assert all(lm.token_bytes[i] == b"" for i in lm.special_ids)
    partial = 0
    for i in range(5, lm.n_vocab):
        raw = lm.token_bytes[i]
        assert raw, i
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # a piece of a multi-byte character
            partial += 1
            assert "\ufffd" in lm.token_text[i]
            continue
        assert text == lm.tokenizer.decode([i]) == lm.token_text[i]
    assert partial > 0  # the byte-level alphabet has lone bytes >= 0x80


@settings(max_examples=150, deadline=None)
@given(CODE)
def test_pieces_spell_the_text_byte_for_byte(lm: OnnxDecoder, text: str) -> None:
    ids = lm.encode(text)
    assert b"".join(lm.token_bytes[i] for i in ids) == text.encode("utf-8")
    assert lm.decode(ids) == text
    assert not set(ids) & lm.special_ids


@settings(max_examples=200, deadline=None)
@given(st.lists(CODE | st.just("\n"), min_size=20, max_size=80).map("\n".join), st.integers(4, 64))
def test_a_long_text_encodes_as_its_head_and_tail_do(lm: OnnxDecoder, text: str, grid: int) -> None:
    cut = split_point(text, grid)
    if cut is not None:
        assert 0 < cut < len(text)
        assert lm._encode(text[:cut]) + lm._encode(text[cut:]) == lm._encode(text)
        grown = text + "x = 1"
        if (len(grown) - grid) // grid == (len(text) - grid) // grid:
            assert split_point(grown, grid) == cut  # typing at the end keeps the head


def test_the_encoding_memos_give_what_the_tokenizer_gives(lm: OnnxDecoder) -> None:
    base = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(400))
    for extra in ("", "y = f1(", "y = f1(2)\nz", "\n\n"):
        assert lm.encode(base + extra) == lm._encode(base + extra)  # the head is remembered
    ids = lm.encode("self.total")
    ids.append(-1)  # a caller's change does not reach the memo
    assert lm.encode("self.total") == lm._encode("self.total")


def test_decode_drops_special_tokens(lm: OnnxDecoder) -> None:
    assert lm.decode([2, *lm.encode("x = 1"), 3, 4, 0]) == "x = 1"


def test_step_returns_normalised_log_probs_and_a_growing_cache(lm: OnnxDecoder) -> None:
    ids = lm.encode("import os\n\ndef f(path):\n    return os.path.join(path")
    assert lm.empty_past(3).shape == (2, 2, 3, 2, 0, 32)
    logp, past = lm.step(np.asarray([ids]), lm.empty_past(1))
    assert logp.shape == (1, 512) and logp.dtype == np.float64
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-9)
    assert past.shape == (2, 2, 1, 2, len(ids), 32)
    logp2, past2 = lm.step(np.asarray([[ids[-1]]]), past)
    assert past2.shape[4] == len(ids) + 1 and np.exp(logp2).sum() == pytest.approx(1.0)


def test_cached_steps_match_a_full_forward(lm: OnnxDecoder, tiny_fp32_model_dir: Path) -> None:
    ids = lm.encode("class A:\n    def __init__(self, items):\n        self.items = items\n")
    for decoder, tol in ((lm, 0.1), (OnnxDecoder(tiny_fp32_model_dir, threads=1), 1e-4)):
        full, _ = decoder.step(np.asarray([ids]), decoder.empty_past(1))
        logp, past = decoder.step(np.asarray([ids[:-4]]), decoder.empty_past(1))
        for t in ids[-4:]:
            logp, past = decoder.step(np.asarray([[t]]), past)
        assert np.abs(logp - full).max() < tol


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_batched_rows_are_independent(
    lm: OnnxDecoder, tiny_fp32_model_dir: Path, precision: str
) -> None:
    # int8 quantizes activations per row: a token's logits do not depend on its batch
    if precision == "fp32":
        lm = OnnxDecoder(tiny_fp32_model_dir, threads=1)
    a, b = lm.encode("for i in range(3):"), lm.encode("while True: pass")
    n = min(len(a), len(b))
    both, _ = lm.step(np.asarray([a[:n], b[:n]]), lm.empty_past(2))
    alone, _ = lm.step(np.asarray([b[:n]]), lm.empty_past(1))
    assert np.abs(both[1] - alone[0]).max() < 1e-4


def test_explicit_causal_inputs_equal_the_default(lm: OnnxDecoder) -> None:
    from fillpoint.completion.runtime import causal_inputs

    ids = np.asarray([lm.encode("import os\nprint(os.getcwd())")])
    logp, past = lm.step(ids[:, :-3], lm.empty_past(1))
    default, _ = lm.run(ids[:, -3:], past)
    mask, pos = causal_inputs(1, past.shape[4], 3)
    explicit, _ = lm.run(ids[:, -3:], past, mask, pos)
    assert np.array_equal(default, explicit)


@pytest.mark.parametrize("last", [None, 1, 3, 40])
def test_a_long_prompt_runs_in_chunks_to_the_same_logits_and_cache(
    lm: OnnxDecoder, last: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fillpoint.completion import runtime

    monkeypatch.setattr(runtime, "PREFILL_CHUNK", 32)  # the tiny model sees 128 tokens
    text = "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(20))
    ids = np.asarray([lm.encode(text)[:84]])
    calls: list[int] = []
    run = lm._run_split
    monkeypatch.setattr(
        lm, "_run_split", lambda feed, *a: calls.append(feed["input_ids"].shape[1]) or run(feed, *a)
    )
    chunked, present = lm.run(ids, lm.empty_past(1), last=last)
    assert calls == [32, 32, 20]
    whole, want = lm.run(ids, lm.empty_past(1), *runtime.causal_inputs(1, 0, ids.shape[1]))
    assert chunked.shape == (1, last or ids.shape[1], whole.shape[2])
    assert np.abs(chunked - whole[:, whole.shape[1] - chunked.shape[1] :]).max() < 1e-4
    assert np.abs(present - want).max() < 1e-4


# --- failures -------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="lacks model.onnx, tokenizer.json, config.json"):
        OnnxDecoder(tmp_path / "nowhere")


def test_missing_tokenizer(release: Path) -> None:
    (release / "tokenizer.json").unlink()
    with pytest.raises(EngineError, match=r"lacks tokenizer\.json$"):
        OnnxDecoder(release)


def test_corrupted_model_fails_its_checksum(release: Path) -> None:
    data = bytearray((release / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (release / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"model\.onnx does not match its checksum"):
        OnnxDecoder(release)


@pytest.mark.parametrize("victim", ["model.onnx", "tokenizer.json", "config.json"])
def test_unloadable_files_without_a_manifest(release: Path, victim: str) -> None:
    (release / "manifest.json").unlink()
    (release / victim).write_bytes(b"\x08\x01garbage{")
    with pytest.raises(EngineError, match=f"cannot load model from {release}"):
        OnnxDecoder(release)


def test_config_without_a_required_key(release: Path) -> None:
    (release / "manifest.json").unlink()
    config = json.loads((release / "config.json").read_text())
    del config["n_head"]
    (release / "config.json").write_text(json.dumps(config))
    with pytest.raises(EngineError, match="cannot load model.*n_head"):
        OnnxDecoder(release)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("{not json", "unreadable model manifest"),
        ("[1, 2]", "unreadable model manifest"),
        ('{"files": {"weights.bin": "00"}}', r"cannot read .*weights\.bin listed in manifest"),
    ],
)
def test_bad_manifests(release: Path, manifest: str, message: str) -> None:
    (release / "manifest.json").write_text(manifest)
    with pytest.raises(EngineError, match=message):
        OnnxDecoder(release)


def test_a_release_without_a_manifest_still_loads(release: Path) -> None:
    (release / "manifest.json").unlink()
    lm = OnnxDecoder(release, threads=1)
    assert lm.info.name == "release" and lm.info.parameters == 0


def test_malloc_tuning_where_the_c_library_is_glibc() -> None:
    import platform
    import subprocess
    import sys

    code = (
        "from fillpoint.completion.runtime import limit_malloc_arenas, give_back_free_memory\n"
        "print(limit_malloc_arenas(), give_back_free_memory(), give_back_free_memory(1e9))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    glibc = str(platform.libc_ver()[0] == "glibc")
    # a process holding less than the threshold keeps its free pages
    assert out.stdout.split() == [glibc, glibc, "False"]


def test_resident_memory_is_read_where_the_system_tells_it() -> None:
    import sys

    from fillpoint.completion.runtime import resident_mib

    rss = resident_mib()
    if sys.platform.startswith("linux"):
        assert rss is not None and 10 < rss < 1e6  # this test process: tens of MiB at least
    else:
        assert rss is None


def test_a_token_tells_its_callbacks_once_and_late_ones_at_once() -> None:
    token, told = CancelToken(), []
    token.on_cancel(lambda: told.append("early"))
    assert told == []
    token.cancel()
    token.cancel()
    token.on_cancel(lambda: told.append("late"))
    assert told == ["early", "late"] and token.cancelled
    kept = CancelToken()
    kept.on_cancel(forgotten := lambda: told.append("forgotten"))
    kept.forget(forgotten)
    kept.cancel()
    assert told == ["early", "late"]


def test_model_calls_stop_with_their_token_inside_the_block_only(lm: OnnxDecoder) -> None:
    ids = np.asarray([lm.encode("def f(x):\n    return x")])
    want, _ = lm.run(ids, lm.empty_past(1))
    with stops_with(CancelToken()):  # a token not cancelled changes nothing
        got, _ = lm.run(ids, lm.empty_past(1))
    np.testing.assert_array_equal(got, want)
    stopped = CancelToken()
    stopped.cancel()
    with pytest.raises(Cancelled), stops_with(stopped):
        lm.run(ids, lm.empty_past(1))
    with pytest.raises(Cancelled):  # the same on another thread's work
        stopping(stopped, lm.run, ids, lm.empty_past(1))
    with stops_with(CancelToken()):
        with pytest.raises(Cancelled), stops_with(stopped):
            lm.run(ids, lm.empty_past(1))
        lm.run(ids, lm.empty_past(1))  # the outer block's token again
    got, _ = lm.run(ids, lm.empty_past(1))  # and none after the blocks
    np.testing.assert_array_equal(got, want)
    many = CancelToken()
    for _ in range(3):
        with stops_with(many):
            lm.run(ids, lm.empty_past(1))
    assert many._callbacks == []  # a block's hook goes with it
