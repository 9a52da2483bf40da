"""The server reads only what it needs: its own code, the model folder, and nothing it is sent.

Runs the real server in process under a Python audit hook that records every file it opens,
while a client opens a document whose path exists on disk (a decoy with other content).
"""

from __future__ import annotations

import sys
import sysconfig
import threading
from pathlib import Path

from reliability_rpc import InProcess, completion_params, inline_params, open_params

REPO = Path(__file__).resolve().parents[2]
_opened: list[str] = []
_recording = threading.Event()


def _hook(event: str, args: tuple) -> None:
    if event == "open" and _recording.is_set() and isinstance(args[0], str | bytes):
        path = args[0].decode() if isinstance(args[0], bytes) else args[0]
        _opened.append(path)


sys.addaudithook(_hook)  # audit hooks cannot be removed; it records only while the flag is set


def _allowed(path: str, model: Path) -> bool:
    """Python's own files, the installed packages, fillpoint's code, the model, /proc and /dev."""
    resolved = Path(path).resolve()
    roots = [
        Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"]}
    ]
    roots += [REPO / name for name in ("lsp", "completion", "models")]
    roots += [model.resolve(), Path("/proc"), Path("/dev"), Path("/sys")]
    # the package's own metadata (an editable install keeps it beside the code), and the
    # OS identification file that a dependency reads to identify the platform
    roots += [*REPO.glob("*.egg-info"), Path("/etc/os-release"), Path("/usr/lib/os-release")]
    return any(resolved == r or r in resolved.parents for r in roots)


def test_server_opens_no_file_it_was_not_asked_to(small_model_dir: Path, tmp_path: Path) -> None:
    decoy = tmp_path / "secret_project" / "app.py"
    decoy.parent.mkdir()
    decoy.write_text("TOKEN = 'do not read me'\n")
    uri = decoy.as_uri()
    _opened.clear()
    _recording.set()
    server = InProcess()
    try:
        client = server.client
        client.initialize({"modelPath": str(small_model_dir)}, None, 30)
        client.wait_notification("window/logMessage", "loaded", 60)
        client.notify("textDocument/didOpen", open_params(uri, "import os\n\nos.pa"))
        client.request("textDocument/completion", completion_params(uri, 2, 5), 30)
        client.request("textDocument/inlineCompletion", inline_params(uri, 2, 5), 30)
    finally:
        server.close()
        _recording.clear()
    assert not [p for p in _opened if "secret_project" in p]
    unexpected = sorted({p for p in _opened if not _allowed(p, small_model_dir)})
    assert not unexpected, unexpected
    assert any(Path(p).name == "model.onnx" for p in _opened)  # the hook did see the load
