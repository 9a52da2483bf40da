"""Export: ONNX parity (fp32 and int8), what the quantizer covers, and the release folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import onnx
import pytest
from test_train import CHECKPOINT_FILES

from fillpoint.models.pycoder import from_pretrained
from fillpoint.training.export import export_onnx, parity, quantize_int8
from fillpoint.training.release import make_release, model_card

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

RELEASE_FILES = ["README.md", "config.json", "manifest.json", "model.onnx", "tokenizer.json"]


@pytest.fixture(scope="module")
def fp32_onnx(tiny_run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported to fp32 ONNX."""
    path = tmp_path_factory.mktemp("export") / "model.fp32.onnx"
    export_onnx(from_pretrained(tiny_run_dir / "checkpoint"), path)
    return path


def dims(value: onnx.ValueInfoProto) -> list[str | int]:
    """The symbolic or fixed size of each axis."""
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_fp32_graph_matches_torch(tiny_run_dir: Path, fp32_onnx: Path) -> None:
    model = from_pretrained(tiny_run_dir / "checkpoint")
    assert parity(model, fp32_onnx, model.config.vocab_size, steps=4) < 1e-4


def test_graph_signature_has_dynamic_batch_and_lengths(fp32_onnx: Path) -> None:
    graph = onnx.load(str(fp32_onnx)).graph
    sig = {v.name: dims(v) for v in [*graph.input, *graph.output]}
    cache = {}
    for i in range(2):  # layers
        for part in ("key", "value"):
            cache[f"past_{part}_{i}"] = ["batch", 2, "past_seq", 32]  # (B, H, P, D)
            cache[f"present_{part}_{i}"] = ["batch", 2, "total_seq", 32]
    assert sig == {
        "input_ids": ["batch", "seq"],
        "attn_mask": ["batch", "seq", "total_seq"],
        "position_ids": ["batch", "seq"],
        "logits": ["batch", "seq", 512],
        **cache,
    }


def test_the_cache_is_appended_to_and_read_in_place(fp32_onnx: Path, tmp_path: Path) -> None:
    """After onnxruntime's optimisations each layer's cache is copied once, by the append:
    no split, stack or transpose of it (each of those cost as much as the append)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(fp32_onnx), opts, providers=["CPUExecutionProvider"])
    nodes = onnx.load(str(tmp_path / "optimized.onnx")).graph.node
    for i in range(2):
        for part in ("key", "value"):
            assert [n.op_type for n in nodes if f"past_{part}_{i}" in n.input] == ["Concat"]
            readers = [n.op_type for n in nodes if f"present_{part}_{i}" in n.input]
            assert readers == ["FusedMatMul" if part == "key" else "MatMul"]


def test_a_graph_with_one_stacked_cache_still_decodes_the_same(
    tiny_run_dir: Path, fp32_onnx: Path, tmp_path: Path
) -> None:
    """Releases exported before the per-layer cache (one `past` input) load and decode as
    before: the runtime feeds them the stacked cache."""
    import warnings

    import numpy as np
    import torch

    from fillpoint.completion.runtime import OnnxDecoder, causal_inputs
    from fillpoint.models.pycoder import PyCoderStep

    model = from_pretrained(tiny_run_dir / "checkpoint").float().eval()
    model.untie()
    stacked = tmp_path / "stacked.onnx"
    past = torch.zeros((2, 2, 1, 2, 2, 32))
    mask, pos = (torch.tensor(a) for a in causal_inputs(1, 2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            PyCoderStep(model),
            (torch.zeros((1, 3), dtype=torch.long), past, mask, pos),
            str(stacked),
            input_names=["input_ids", "past", "attn_mask", "position_ids"],
            output_names=["logits", "present"],
            dynamic_axes={
                "input_ids": {1: "seq"},
                "past": {4: "past_seq"},
                "attn_mask": {1: "seq", 2: "total_seq"},
                "position_ids": {1: "seq"},
                "logits": {1: "seq"},
                "present": {4: "total_seq"},
            },
            opset_version=17,
            dynamo=False,
        )
    old, new = (OnnxDecoder.for_graph(p, 2, 2, 32) for p in (stacked, fp32_onnx))
    ids = np.random.default_rng(0).integers(0, 512, size=(1, 9))
    past_old, past_new = old.empty_past(), new.empty_past()
    for chunk in (ids[:, :6], ids[:, 6:8], ids[:, 8:]):
        a, past_old = old.run(chunk, past_old)
        b, past_new = new.run(chunk, past_new)
        np.testing.assert_allclose(a, b, atol=1e-4)
        np.testing.assert_allclose(past_old, past_new, atol=1e-5)
    assert past_new.shape == (2, 2, 1, 2, 9, 32)


def test_int8_quantizes_every_linear_layer_and_the_head(
    tiny_run_dir: Path, fp32_onnx: Path, tmp_path: Path
) -> None:
    model = from_pretrained(tiny_run_dir / "checkpoint")
    int8 = tmp_path / "model.onnx"
    quantize_int8(fp32_onnx, int8)
    assert parity(model, int8, model.config.vocab_size) < 0.3  # measured ~0.04
    graph = onnx.load(str(int8)).graph
    n_layer, n_embd, vocab = 2, 64, 512
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMulInteger") == 4 * n_layer + 1  # qkv, proj, 2 MLP per layer + head
    assert "DynamicQuantizeLinear" not in ops  # activation scales are per row, not per call
    int8_shapes = [list(t.dims) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert [n_embd, vocab] in int8_shapes  # the untied output head


@pytest.mark.parametrize("quantized", [False, True])
def test_the_logits_window_gives_the_last_rows_of_the_full_logits(
    fp32_onnx: Path, tmp_path: Path, quantized: bool
) -> None:
    import numpy as np

    from fillpoint.completion.runtime import OnnxDecoder
    from fillpoint.training.export import add_logits_window

    src = fp32_onnx
    if quantized:
        src = tmp_path / "model.int8.onnx"
        quantize_int8(fp32_onnx, src)
    windowed = tmp_path / "windowed.onnx"
    onnx.save(add_logits_window(onnx.load(str(src))), str(windowed))
    full, cut = (OnnxDecoder.for_graph(p, 2, 2, 32) for p in (src, windowed))
    ids = np.random.default_rng(0).integers(0, 512, size=(2, 9))
    want, want_present = full.run(ids, full.empty_past(2))
    for n in (1, 4, 9, 50):
        logits, present = cut.run(ids, cut.empty_past(2), last=n)
        np.testing.assert_array_equal(logits, want[:, -min(n, 9) :])
        np.testing.assert_array_equal(present, want_present)
    with pytest.raises(ValueError, match="not the output of a head"):
        add_logits_window(onnx.load(str(src)), ("present_key_0",))


def test_release_folder_is_complete_and_checksummed(
    tiny_model_dir: Path, tiny_run_dir: Path
) -> None:
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == RELEASE_FILES
    manifest = json.loads((tiny_model_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json", "config.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((tiny_model_dir / name).read_bytes()).hexdigest() == digest
    assert manifest["fp32_parity_max_abs"] < 1e-4
    assert manifest["trained_steps"] == 120 and manifest["name"] == "fillpoint-pycoder"
    assert manifest["final_val_loss"] is not None and manifest["data"]["train"]["files"] > 0
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architecture"] == "pycoder" and config["tie_weights"] is False
    assert (config["n_layer"], config["n_embd"], config["vocab_size"]) == (2, 64, 512)
    tokenizer = (tiny_run_dir.parent / "tokenizer.json").read_bytes()
    assert (tiny_model_dir / "tokenizer.json").read_bytes() == tokenizer
    card = (tiny_model_dir / "README.md").read_text()
    assert card.startswith("# fillpoint-pycoder") and "final validation loss" in card


def test_the_card_names_the_run_a_model_continued_from(tiny_run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    state_file = run / "checkpoint" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    first = {"step": 1135, "tokens": 74_383_360, "seconds": 133.2, "hardware": "a GPU"}
    second = {"step": 3392, "tokens": 55_574_528, "seconds": 6600.2, "continued_from": first}
    before = {"step": 3346, "tokens": 54_820_864, "seconds": 6912.0, "continued_from": second}
    state_file.write_text(json.dumps({**state, "continued_from": before}))
    card, extra = model_card(run, tiny_run_dir.parent / "tokenizer.json", None)
    lines = [line for line in card.splitlines() if "from the weights of" in line]
    assert len(lines) == 3  # one line per earlier run, nearest first
    assert lines[0].startswith("- starting from the weights of an earlier run: 3346 steps")
    assert "the run before it: 3392 steps, 55.6M tokens, 110.0 minutes" in lines[1]
    assert "the run before it: 1135 steps, 74.4M tokens, 2.2 minutes on a GPU" in lines[2]
    assert all(f"before{s}.json" in line for s, line in zip(("", "_2", "_3"), lines, strict=True))
    steps = state["step"] + 3346 + 3392 + 1135
    assert f"- in all, 4 runs: {steps} steps" in card
    assert extra["continued_from"] == before
    plain, extra = model_card(tiny_run_dir, tiny_run_dir.parent / "tokenizer.json", None)
    assert "earlier run" not in plain and "before.json" not in plain
    assert extra["continued_from"] is None


def test_the_card_names_dropout_if_trained_with_it(tiny_run_dir: Path, tmp_path: Path) -> None:
    plain, _ = model_card(tiny_run_dir, tiny_run_dir.parent / "tokenizer.json", None)
    assert "dropout" not in plain
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    config = run / "checkpoint" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "dropout": 0.1}))
    card, _ = model_card(run, tiny_run_dir.parent / "tokenizer.json", None)
    assert ", dropout 0.1 in training" in card


def test_the_card_gives_each_splits_characters_per_token(tiny_run_dir: Path) -> None:
    card, _ = model_card(tiny_run_dir, tiny_run_dir.parent / "tokenizer.json", None)
    data = Path(json.loads((tiny_run_dir / "train_config.json").read_text())["data"])
    info = json.loads((data / "train.json").read_text())
    assert info["tokens"] > 0
    assert f" ({info['chars'] / info['tokens']:.2f} characters per token)" in card


def test_training_run_wrote_its_log_plot_and_checkpoint(tiny_run_dir: Path) -> None:
    rows = [json.loads(x) for x in (tiny_run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(120))
    assert (tiny_run_dir / "loss.png").stat().st_size > 1000
    names = sorted(p.name for p in (tiny_run_dir / "checkpoint").iterdir())
    assert names == CHECKPOINT_FILES


def test_the_card_gives_the_evaluation_with_the_line_decoder(tiny_run_dir: Path) -> None:
    evaluation = {
        "command": "fillpoint train eval --model m",
        "identifier_starts": {"fillpoint (healing)": {"top1": 0.4, "top5": 0.6, "mrr10": 0.5}},
        "line": {"exact": 0.21, "edit_sim": 52.1, "n": 120},
        "line_greedy": {"exact": 0.173, "edit_sim": 50.4, "n": 120},
        "line_beam": 3,
        "line_mode": "bytelevel",
    }
    card, extra = model_card(tiny_run_dir, tiny_run_dir.parent / "tokenizer.json", evaluation)
    assert "| fillpoint (healing) | 40.0% | 60.0% | 0.500 |" in card
    assert "Line completion (beam of 3, bytelevel prompts): exact match 21.0%, edit" in card
    assert "Greedy decoding: exact match 17.3%, edit similarity 50.4." in card
    assert extra["evaluation"] == evaluation


def test_card_only_rewrites_card_and_manifest_and_keeps_the_model(
    tiny_model_dir: Path, tiny_run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "release"
    shutil.copytree(tiny_model_dir, out)
    before = {f: (out / f).read_bytes() for f in ("model.onnx", "tokenizer.json", "config.json")}
    accuracy = {"accuracy": 0.589, "identifier_accuracy": 0.436, "tokens": 9, "files": 1}
    evaluation = {"token_accuracy": {**accuracy, "exact": {**accuracy, "accuracy": 0.558}}}
    (tmp_path / "results.json").write_text(json.dumps(evaluation))
    tokenizer = tiny_run_dir.parent / "tokenizer.json"
    make_release(tiny_run_dir, tokenizer, out, tmp_path / "results.json", card_only=True)
    assert {f: (out / f).read_bytes() for f in before} == before
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["evaluation"] == evaluation and manifest["files"]
    card = (out / "README.md").read_text()
    assert "Token-level accuracy (CodeXGLUE rules): 58.9%, identifiers 43.6%." in card
    assert "Counting comments and spelling out every string literal: 55.8%." in card
    with pytest.raises(SystemExit, match="no release"):
        make_release(tiny_run_dir, tokenizer, tmp_path / "empty", card_only=True)
    with pytest.raises(SystemExit, match="not found: .*train_config.json"):
        make_release(tmp_path / "no-run", tokenizer, out, card_only=True)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="is not JSON"):
        make_release(tiny_run_dir, tokenizer, out, tmp_path / "bad.json", card_only=True)
    assert json.loads((out / "manifest.json").read_text()) == manifest  # nothing lost
