"""No network port without --tcp (loopback with it); released models hold no pickles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_rpc import SERVE, SERVER_ENV, Subprocess

REPO = Path(__file__).resolve().parents[2]
LISTEN = "0A"  # TCP state in /proc/net/tcp*
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy"}


def _inet_sockets(pid: int) -> list[tuple[str, str, str]]:
    """(protocol, local address, state) of the process's TCP and UDP sockets."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed while listing
            continue
        if found := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(found.group(1))
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for row in Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]:
            cols = row.split()
            if cols[9] in inodes:
                out.append((proto, cols[1], cols[3]))
    return out


def _loopback(address: str) -> bool:
    """A /proc/net address (hex, little-endian words) on 127.0.0.0/8 or ::1."""
    host = address.split(":")[0]
    if len(host) == 8:
        return host.endswith("7F")
    return host == "00000000000000000000000001000000"


def test_stdio_server_opens_no_network_socket(small_model_dir: Path) -> None:
    server = Subprocess()
    try:
        server.client.initialize({"modelPath": str(small_model_dir)}, None, 30)
        server.client.wait_notification("window/logMessage", "loaded", 120)
        assert _inet_sockets(server.pid) == []
    finally:
        assert server.close() == 0


@pytest.mark.parametrize("spec", ["127.0.0.1:0", "0"])
def test_tcp_listens_on_loopback_only(spec: str) -> None:
    proc = subprocess.Popen(
        [*SERVE, "--tcp", spec, "--log-level", "info"],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=SERVER_ENV,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # pygls logs the address once it listens
            line = proc.stderr.readline().decode()
            assert line, "server exited before listening"
            if "Serving on" in line:
                break
        sockets = _inet_sockets(proc.pid)
        listening = [s for s in sockets if s[0].startswith("tcp") and s[2] == LISTEN]
        assert listening, sockets
        assert all(_loopback(s[1]) for s in sockets), sockets
    finally:
        proc.kill()
        proc.wait(10)
        proc.stderr.close()


def test_release_has_no_pickles() -> None:
    folder = REPO / "models" / "release"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    assert not [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    for path in files:
        head = path.read_bytes()[:4]
        assert not head.startswith(b"\x80"), f"{path} looks like a pickle"
        assert not head.startswith(b"PK\x03\x04"), f"{path} looks like a torch zip checkpoint"


def test_server_loads_without_torch_or_pickle(release_model_dir: Path) -> None:
    """Loading the release and answering imports no torch and unpickles nothing."""
    code = f"""
import pickle, sys
def refuse(*a, **k):
    raise AssertionError("unpickling during model load")
pickle.load = pickle.loads = pickle.Unpickler = refuse
from fillpoint.completion.documents import Document
from fillpoint.completion.engine import Engine
from fillpoint.completion.types import EngineSettings, Position
engine = Engine(EngineSettings(model_path={str(release_model_dir)!r}))
engine.load()
assert engine.ready, engine.error
engine.complete(Document("file:///a.py", "import os\\nos.pa"), Position(1, 5))
assert "torch" not in sys.modules and "transformers" not in sys.modules
"""
    done = subprocess.run(
        [sys.executable, "-c", code], env=SERVER_ENV, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
