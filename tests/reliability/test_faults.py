"""Injected faults: broken model folders, onnxruntime failing mid-request, and recovery."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability_rpc import InProcess, Subprocess, completion_params, inline_params, open_params

URI = "file:///work/faults.py"
TEXT = "import os\n\n\ndef join_all(parts):\n    return os.path.join(*parts)\n\n\nos.pa"
CURSOR = (7, 5)
STEP_S = 30.0
LOAD_S = 120.0
SHOW, LOG = "window/showMessage", "window/logMessage"


def _rehash(folder: Path, name: str) -> None:
    """Update the manifest, so the broken file reaches onnxruntime instead of the checksum."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def missing_model(folder: Path) -> None:
    (folder / "model.onnx").unlink()


def truncated_model(folder: Path) -> None:
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])
    _rehash(folder, "model.onnx")


def garbage_model(folder: Path) -> None:
    (folder / "model.onnx").write_bytes(b"\x00\xffnot an onnx graph\n" * 4096)
    _rehash(folder, "model.onnx")


def missing_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()


def checksum_mismatch(folder: Path) -> None:
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))


FAULTS: list[tuple[Callable[[Path], None], str]] = [
    (missing_model, "lacks model.onnx"),
    (truncated_model, "cannot load model"),
    (garbage_model, "cannot load model"),
    (missing_tokenizer, "lacks tokenizer.json"),
    (checksum_mismatch, "model.onnx does not match its checksum in manifest.json"),
]


def _empty(client: Any) -> None:
    """Both kinds of request are answered, with nothing in them."""
    reply = client.request("textDocument/completion", completion_params(URI, *CURSOR), STEP_S)
    assert reply["result"]["items"] == []
    reply = client.request("textDocument/inlineCompletion", inline_params(URI, *CURSOR), STEP_S)
    assert reply["result"]["items"] == []


@pytest.mark.parametrize(("fault", "message"), FAULTS, ids=[f.__name__ for f, _ in FAULTS])
def test_broken_model_is_reported_and_recovers(
    small_model_dir: Path, tmp_path: Path, fault: Callable[[Path], None], message: str
) -> None:
    folder = tmp_path / "release"
    shutil.copytree(small_model_dir, folder)
    fault(folder)
    server = Subprocess()
    try:
        client = server.client
        client.initialize({"modelPath": str(folder)}, None, STEP_S)
        shown = client.wait_notification(SHOW, "could not load the model", LOAD_S)
        assert shown["params"]["type"] == 1  # Error
        assert message in shown["params"]["message"], shown
        assert "Completions are off" in shown["params"]["message"]
        client.notify("textDocument/didOpen", open_params(URI, TEXT))
        _empty(client)
        assert server.alive()
        # Fix the files, save the (unchanged) settings: the server loads the model again.
        shutil.rmtree(folder)
        shutil.copytree(small_model_dir, folder)
        client.settings = {"modelPath": str(folder)}
        client.notify("workspace/didChangeConfiguration", {"settings": {}})
        client.wait_notification(LOG, "loaded", LOAD_S)
        reply = client.request("textDocument/completion", completion_params(URI, *CURSOR), STEP_S)
        assert reply["result"]["items"], "no completions after the model was fixed"
        assert len(client.messages(SHOW)) == 1
    finally:
        assert server.close() == 0


def test_onnxruntime_failing_mid_request(small_model_dir: Path) -> None:
    """session.run raising: an error in the log, empty results, then normal service again."""
    target = InProcess()
    try:
        client = target.client
        client.initialize({"modelPath": str(small_model_dir)}, None, STEP_S)
        client.wait_notification(LOG, "loaded", LOAD_S)
        client.notify("textDocument/didOpen", open_params(URI, TEXT))
        session = target.server.engine._lm.session
        calls = []

        def boom(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            raise RuntimeError("injected onnxruntime failure")

        session.run = session.run_with_iobinding = boom  # graphs with one cache or per layer
        _empty(client)
        assert len(calls) >= 2
        failures = [m for m in client.messages(LOG) if "injected onnxruntime failure" in m]
        assert any(m.startswith("complete failed at") for m in failures), failures
        assert any(m.startswith("inline failed at") for m in failures), failures
        del session.run, session.run_with_iobinding  # the class's own methods again
        reply = client.request("textDocument/completion", completion_params(URI, *CURSOR), STEP_S)
        assert reply["result"]["items"]
    finally:
        target.close()
        assert not target.thread.is_alive()
