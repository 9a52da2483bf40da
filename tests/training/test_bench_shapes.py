"""bench_shapes: the per-call cost of a decoder shape, from an exported random model."""

from __future__ import annotations

import argparse
import json

import pytest

from fillpoint.training.bench_shapes import main, parse_shape, random_release, shape_cost


def test_shapes_are_parsed_and_bad_ones_refused() -> None:
    assert parse_shape("4x6x384") == (4, 6, 384)
    for bad in ("4x6", "4x5x384", "0x2x32", "axbxc"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_shape(bad)


def test_a_tiny_shape_is_timed_for_each_call_size(capsys: pytest.CaptureFixture[str]) -> None:
    params, cost = shape_cost((1, 2, 32), new_tokens=(1, 8), cached=4, repeats=2, vocab=64)
    assert params > 64 * 32 and sorted(cost) == [1, 8] and all(ms > 0 for ms in cost.values())
    with pytest.raises(SystemExit):
        main(["4x5x384"])
    assert "the width must split into the heads" in capsys.readouterr().err


def test_a_shape_becomes_a_release_the_engine_serves(tmp_path) -> None:
    from fillpoint.completion.documents import Document
    from fillpoint.completion.engine import Engine, default_model_path
    from fillpoint.completion.types import EngineSettings

    folder = random_release((1, 2, 32), tmp_path / "1x2x32")
    shipped = default_model_path()
    assert (folder / "tokenizer.json").read_bytes() == (shipped / "tokenizer.json").read_bytes()
    assert (folder / "codefill" / "model.onnx").exists() == (shipped / "codefill").is_dir()
    config = json.loads((folder / "config.json").read_text())
    assert (config["n_layer"], config["n_head"], config["n_embd"]) == (1, 2, 32)
    engine = Engine(EngineSettings(model_path=str(folder)))
    engine.load()
    assert engine.ready and engine.model_name == "random-1x2x32", engine.error
    doc = Document("file:///t.py", "import os\nos.")
    assert engine.complete(doc, doc.position_at(len(doc.text))).items is not None
