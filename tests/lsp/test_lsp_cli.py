"""The `fillpoint` command line."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from lsp_fake_engine import FakeEngine

from fillpoint.completion.types import EngineSettings
from fillpoint.lsp import cli

SNIPPET = "import os\n\nvalue = os.path.join('a')\nprint(val)\n"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2087", ("127.0.0.1", 2087)),
        (":2087", ("127.0.0.1", 2087)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        ("[::1]:9000", ("::1", 9000)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_host_port(spec: str, expected: tuple[str, int]) -> None:
    assert cli.parse_host_port(spec) == expected


@pytest.mark.parametrize("spec", ["host:", "host:port", "1:70000", ""])
def test_parse_host_port_rejects(spec: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_host_port(spec)


def test_parse_location() -> None:
    assert cli.parse_location("a/b.py:3:7") == (Path("a/b.py"), 3, 7)
    assert cli.parse_location("C:/x/b.py:1:1") == (Path("C:/x/b.py"), 1, 1)
    for bad in ["b.py:3", "b.py:0:1", "b.py:x:1", ":1:1"]:
        with pytest.raises(argparse.ArgumentTypeError):
            cli.parse_location(bad)


def _complete_args(location: str, *extra: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["complete", location, *extra])


def test_complete_text(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    out = io.StringIO()
    args = _complete_args(f"{source}:4:10")  # one-based: after "print(val"
    assert cli.run_complete(args, engine_factory=FakeEngine, out=out) == 0
    text = out.getvalue()
    assert "value" in text and "100.0%" in text and "ms" in text
    assert "inline" in text and "'value()'" in text


def test_complete_json(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    out = io.StringIO()
    seen: list[EngineSettings] = []

    def factory(settings: EngineSettings) -> FakeEngine:
        seen.append(settings)
        return FakeEngine(settings)

    args = _complete_args(f"{source}:4:10", "--json", "--mid-token", "naive", "--model", "/m")
    assert cli.run_complete(args, engine_factory=factory, out=out) == 0
    report = json.loads(out.getvalue())
    assert [i["text"] for i in report["completion"]["items"]] == ["value"]
    assert report["inline"]["text"] == "value()"
    assert report["completion"]["elapsed_ms"] >= 0 and report["load_ms"] >= 0
    assert (seen[0].mid_token, seen[0].model_path) == ("naive", "/m")


def test_complete_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    assert cli.run_complete(_complete_args(f"{tmp_path}/nope.py:1:1"), FakeEngine) == 2
    assert cli.run_complete(_complete_args(f"{source}:9:1"), FakeEngine) == 2
    assert cli.run_complete(_complete_args(f"{source}:1:30"), FakeEngine) == 2
    missing = _complete_args(f"{source}:1:1", "--model", "/models/missing")
    assert cli.run_complete(missing, FakeEngine) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "outside the file" in err and "could not load" in err


def test_train_forwards_all_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []
    fake = types.ModuleType("fillpoint.training.cli")
    fake.main = lambda argv: received.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fillpoint.training.cli", fake)
    assert cli.main(["train", "--help", "run", "--epochs", "3"]) == 0
    assert received == [["--help", "run", "--epochs", "3"]]


def test_forward_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fp_needs_torch.py").write_text("import fp_not_installed_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.FORWARDED, "train", ("fp_needs_torch", "train"))
    monkeypatch.setitem(cli.FORWARDED, "bench", ("fillpoint.training.fp_no_such_module", "b"))
    assert cli.main(["train"]) == 2
    assert cli.main(["bench", "--x"]) == 2
    err = capsys.readouterr().err
    assert "fp_not_installed_dependency is not installed" in err and "fillpoint[train]" in err
    assert "not available" in err


def test_version_and_help() -> None:
    run = [sys.executable, "-m", "fillpoint.lsp"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("fillpoint ")
    bare = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "serve" in bare.stderr


def test_no_torch_on_the_server_path() -> None:
    code = (
        "import sys\n"
        "import fillpoint.lsp.cli, fillpoint.lsp.server, fillpoint.completion.engine\n"
        "from fillpoint.lsp.server import create_server\n"
        "create_server()\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_complete_with_the_release_model(release_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    command = [sys.executable, "-m", "fillpoint.lsp", "complete", f"{source}:4:10", "--json"]
    result = subprocess.run(
        [*command, "--model", str(release_model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["completion"]["items"]
    probabilities = [i["probability"] for i in report["completion"]["items"]]
    assert probabilities == sorted(probabilities, reverse=True)
