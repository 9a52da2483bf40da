"""`make run`'s demo: the real server, the shipped models, lists and ghost text at every cursor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_prints_lists_and_ghost_text(release_model_dir: Path) -> None:
    if release_model_dir != REPO / "models" / "release":
        pytest.skip("the demo uses the bundled model")
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"server ready after \d+\.\d+ s", out)
    cursors = out.count("completion list (")
    assert cursors >= 5
    ghosts = re.findall(r"inline \(\d+ ms\):  .*‸(.*)\n", out)
    assert len(ghosts) == cursors and sum(bool(g.strip()) for g in ghosts) >= cursors // 2
    assert "server message" not in out
