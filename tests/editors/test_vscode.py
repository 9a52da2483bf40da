"""The VS Code extension's own checks, run through npm (skipped without node and npm).

`npm ci` runs first if editors/vscode/node_modules is missing. The end-to-end tests start
this Python's `python -m fillpoint.lsp serve` and drive it with vscode-languageserver-protocol,
and with the bundled extension (vscode-languageclient inside) in a fake VS Code API.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"
NPM = shutil.which("npm")
INSTALL_S = 600  # npm ci on a slow network
RUN_S = 300  # build, compile and the tests on a busy 2-core machine

pytestmark = pytest.mark.skipif(
    NPM is None or shutil.which("node") is None, reason="needs node and npm"
)


def _env(**extra: str) -> dict[str, str]:
    """This environment, with this interpreter for the server and without a model unless given."""
    env = {k: v for k, v in os.environ.items() if k != "FILLPOINT_MODEL"}
    return {**env, "PYTHON": sys.executable, "FILLPOINT_PYTHON": sys.executable, **extra}


def npm(*args: str, timeout: float = RUN_S, **extra: str) -> str:
    """Run npm in editors/vscode; fail with its output if it fails."""
    assert NPM is not None
    proc = subprocess.run(
        [NPM, *args],
        cwd=EXTENSION,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"npm {' '.join(args)} exited {proc.returncode}:\n{output}")
    return output


@pytest.fixture(scope="module", autouse=True)
def node_modules() -> None:
    """The locked dependencies (npm ci), unless installed since the lock file last changed."""
    installed = EXTENSION / "node_modules" / ".package-lock.json"
    lock = EXTENSION / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm("ci", "--no-audit", "--no-fund", timeout=INSTALL_S)


def _counts(output: str) -> dict[str, int]:
    """The closing counts of node's test runner (`ℹ pass 12`)."""
    return {k: int(v) for k, v in re.findall(r"^ℹ (\w+) (\d+)$", output, re.MULTILINE)}


def test_settings_match_the_server_schema() -> None:
    output = npm("run", "check-settings")
    assert "match settings_schema()" in output


def test_format() -> None:
    npm("run", "lint")


def test_unit_tests() -> None:
    output = npm("test")
    counts = _counts(output)
    assert counts.get("fail") == 0 and counts.get("pass", 0) > 0, output


def test_end_to_end_with_the_real_server(editor_model_dir: Path) -> None:
    output = npm("run", "test:e2e", FILLPOINT_MODEL=str(editor_model_dir))
    counts = _counts(output)
    assert counts.get("fail") == 0 and counts.get("skipped") == 0, output
    assert "✔ fillpoint serve over stdio (vscode-languageserver-protocol)" in output, output
    assert "✔ bundled extension + vscode-languageclient + fillpoint serve" in output, output
    assert "server: " + " ".join([sys.executable, "-m", "fillpoint.lsp", "serve"]) in output


def test_vsix_package() -> None:
    npm("run", "package")
    vsix = EXTENSION / "fillpoint.vsix"
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
    assert {"extension/package.json", "extension/dist/extension.js"} <= names, names
    assert not any("node_modules" in n or n.endswith(".ts") for n in names), names
