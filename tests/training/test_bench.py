"""`fillpoint bench` on a tiny workload: every field is written and sane (no timing targets)."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path

import pytest

from fillpoint.training import bench
from fillpoint.training.bench_client import jedi_command
from fillpoint.training.bench_workload import advance, held_out_files, keystrokes, plan

N_REQUESTS = 10


def test_plan_is_seeded_and_bounded(tmp_path: Path) -> None:
    files = held_out_files(tmp_path / "no-corpus", 2, seed=0)  # no test.jsonl: stdlib modules
    assert files and all(name.startswith("stdlib:") for name, _ in files)
    sessions = plan(files, N_REQUESTS, seed=0)
    again = plan(files, N_REQUESTS, seed=0)
    assert [s.requests for s in sessions] == [s.requests for s in again]
    requests = [r for s in sessions for r in s.requests]
    assert 0 < len(requests) <= N_REQUESTS
    for s in sessions:
        assert all(s.start <= r.offset <= len(s.text) for r in s.requests)
        for r in s.requests:
            if r.kind == "complete" and r.typed:
                # mid-token: the typed characters are the start of an identifier
                assert 1 <= r.typed <= 3
                assert s.text[r.offset - r.typed : r.offset].isidentifier()


def test_keystrokes_and_positions() -> None:
    text = "def f(x):\n    return x  # \U0001f600\n"
    pieces = list(keystrokes(text, 4))
    assert "".join(pieces) == text
    assert all("\n" not in p[:-1] for p in pieces)  # a newline always ends its chunk
    at = (0, 0)
    for p in keystrokes(text, random.Random(1).randint(1, 5)):
        at = advance(*at, p)
    assert at == (2, 0)
    assert advance(0, 0, "a\U0001f600") == (0, 3)  # UTF-16: the emoji is two units


def test_server_options_carry_the_model_and_the_decoding_options(tmp_path: Path) -> None:
    parse = bench.build_parser().parse_args
    assert bench.server_options(parse(["--model", ""])) is None
    options = bench.server_options(parse(["--model", str(tmp_path), "--mid-token", "auto"]))
    assert options == {"modelPath": str(tmp_path.resolve()), "midToken": "auto"}
    assert bench.server_options(parse(["--no-prefetch"])) == {"prefetch": False}
    assert bench.server_options(parse(["--line-beam", "1"])) == {"lineBeam": 1}
    with pytest.raises(SystemExit):
        parse(["--mid-token", "exact"])


def test_profile_times_the_stages_after_a_prefetch(tiny_model_dir: Path, tmp_path: Path) -> None:
    stem = tmp_path / "prof"
    argv = ["--model", str(tiny_model_dir), "--stdlib"]
    assert bench.main([*argv, "--files", "1", "--profile", "12", "--out", str(stem)]) == 0
    text = stem.with_suffix(".profile.txt").read_text()
    assert "warm at the text before the last keystroke" in text
    assert "requests, " in text and "under 8 ms" in text
    assert re.search(r"idle work before each request .*: p50 \d+ ms, p90 \d+ ms, \d+ of \d+", text)
    assert (
        bench.main([*argv, "--files", "1", "--profile", "4", "--no-prefetch", "--out", str(stem)])
        == 0
    )
    unwarmed = stem.with_suffix(".profile.txt").read_text()
    assert "not warmed" in unwarmed and "idle work" not in unwarmed


def test_in_process_replay_cuts_the_idle_work_at_the_pause(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from fillpoint.training import bench_inprocess

    sessions = plan(held_out_files(tmp_path / "no-corpus", 1, 0), 8, 0)
    for gap_ms, cut in ((0, True), (10_000, False)):
        timed = bench_inprocess.replay(str(tiny_model_dir), sessions, gap_ms)
        assert len(timed) == sum(len(s.requests) for s in sessions) > 0
        assert all(t.ms >= 0 and t.idle_ms >= 0 for t in timed)
        # no pause: every idle work with a model call to make is cut; a long one: none is
        assert any(not t.finished for t in timed) == cut
    stem = tmp_path / "inproc"
    argv = ["--model", str(tiny_model_dir), "--stdlib"]
    assert (
        bench.main([*argv, "--files", "1", "--requests", "6", "--in-process", "--out", str(stem)])
        == 0
    )
    text = stem.with_suffix(".inprocess.md").read_text()
    assert "--in-process" in text
    assert re.search(
        r"\| completion \| \d+ \| [\d.]+ ms \| [\d.]+ ms \| [\d.]+ ms \| \d+/\d+ \|", text
    )


def test_editor_like_typing_sends_a_request_at_every_keystroke(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from fillpoint.training import bench_editor

    sessions = plan(held_out_files(tmp_path / "no-corpus", 1, 0), 50, 0)
    result = asyncio.run(bench_editor.replay(sessions, 12, 5, {"modelPath": str(tiny_model_dir)}))
    typed = sessions[0].text[sessions[0].start :][:12]
    assert result["keystrokes"] == len(typed) == 12
    assert len(result["inline_ms"]) == 12  # ghost text asked for at every keystroke
    assert len(result["completion_ms"]) == sum(map(bench_editor.asks_for_list, typed))
    assert result["cpu_s"] > 0 and result["peak_rss_mb"] > 10
    stem = tmp_path / "editor"
    argv = ["--model", str(tiny_model_dir), "--stdlib"]
    argv += ["--files", "1", "--editor-like", "5", "--keystrokes", "8", "--out", str(stem)]
    assert bench.main(argv) == 0
    text = stem.with_suffix(".editor.md").read_text()
    assert "--editor-like 5" in text and "8 keystrokes, one every 5 ms" in text
    assert re.search(r"\| inline \| 8 \| [\d.]+ ms \| [\d.]+ ms \| [\d.]+ ms \|", text)


def test_bench_writes_all_outputs(tiny_model_dir: Path, tmp_path: Path) -> None:
    stem = tmp_path / "out" / "benchmarks"
    argv = ["--model", str(tiny_model_dir), "--stdlib"]
    argv += ["--files", "1", "--requests", str(N_REQUESTS), "--chunk", "3", "--gap-ms", "7"]
    argv += ["--out", str(stem)]
    assert bench.main([*argv, "--decoding", "4"]) == 0

    result = json.loads(stem.with_suffix(".json").read_text())
    markdown = stem.with_suffix(".md").read_text()
    assert result["command"].startswith("fillpoint bench --model")
    assert result["command"] in markdown
    assert stem.with_suffix(".png").stat().st_size > 0

    work = result["workload"]
    assert work["source"] == "stdlib" and len(work["files"]) == 1
    assert work["gap_ms"] == 7 and "pauses 7 ms" in markdown
    n_complete, n_inline = work["completion_requests"], work["inline_requests"]
    assert 0 < n_complete + n_inline <= N_REQUESTS and work["keystrokes"] > 0

    ours = result["servers"]["fillpoint"]
    assert ours["completion"]["n"] == n_complete
    assert (ours["inline"] or {"n": 0})["n"] == n_inline
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        assert 0 < ours["completion"][key] < 60_000
    assert ours["completion"]["p50_ms"] <= ours["completion"]["p95_ms"]
    assert ours["completion"]["p95_ms"] <= ours["completion"]["p99_ms"]
    assert 0 < ours["cold_start_ms"] < 180_000
    assert 10 < ours["peak_rss_mb"] < 10_000
    assert ours["cpu_ms_per_request"] >= 0
    assert len(result["samples"]["fillpoint"]["completion"]) == n_complete

    metrics = {row["metric"] for row in result["checks"]}
    assert {"completion.p95_ms", "inline.p95_ms", "cold_start_ms", "peak_rss_mb"} <= metrics
    assert "p95_ratio_vs_jedi" in metrics
    for row in result["checks"]:
        assert f"| {row['metric']} |" in markdown
    rss = ours["peak_rss_mb"]  # MiB, also said in decimal megabytes
    assert f"{rss:.0f} MiB is {rss * 2**20 / 1e6:.0f} MB in decimal megabytes" in markdown

    decoded = result["decoding"]  # greedy against each drafter on the same file
    assert decoded["lines"] == 4 and decoded["tokens"] > 0
    for kind, name in (("table", "Token Recycling"), ("document", "drafts from the document")):
        assert decoded["drafters"][kind]["identical"] == 4
        assert decoded["drafters"][kind]["speedup"] > 0 and f"| {name}" in markdown
    recycling = next(r for r in result["checks"] if r["metric"] == "token_recycling_speedup")
    assert recycling["value"] == decoded["drafters"]["table"]["speedup"]
    prefill = decoded["prefill"]  # the table learns from the prompts: their prefill's cost
    assert prefill["tokens"] > 0 and prefill["watched_cpu_s"] > 0
    assert "idle work per prompt token" in markdown
    beam = decoded["beam"]  # the ghost text's beam, timed on the same prompts
    assert beam["width"] > 1 and 0 <= beam["identical"] <= 4 and beam["speedup"] > 0
    assert f"| beam of {beam['width']}" in markdown
    typed = decoded["typed"]  # lines typed through, decoded where the shown line is left
    assert typed["lines"] >= 1 and "Lines as they are typed" in markdown
    for d in typed["drafters"].values():
        assert d["identical"] == typed["lines"] and d["model_calls"] >= typed["lines"]

    if jedi_command() is None:
        pytest.skip("jedi-language-server is not installed: no comparison to check")
    jedi = result["servers"]["jedi-language-server"]
    assert jedi["completion"]["n"] == n_complete and jedi["inline"] is None
    assert result["p95_ratio_vs_jedi"] > 0


def test_repeated_replays_pool_their_requests(tiny_model_dir: Path, tmp_path: Path) -> None:
    stem = tmp_path / "benchmarks"
    argv = ["--model", str(tiny_model_dir), "--stdlib"]
    argv += ["--files", "1", "--requests", "6", "--no-jedi", "--decoding", "0"]
    assert bench.main([*argv, "--repeats", "2", "--out", str(stem)]) == 0
    result = json.loads(stem.with_suffix(".json").read_text())
    work, ours = result["workload"], result["servers"]["fillpoint"]
    assert work["repeats"] == 2 and "2 times, each time from a fresh process" in (
        stem.with_suffix(".md").read_text()
    )
    assert ours["completion"]["n"] == 2 * work["completion_requests"] > 0
    assert len(result["samples"]["fillpoint"]["completion"]) == ours["completion"]["n"]
    assert 0 < ours["cold_start_ms"] < 180_000
    recycling = next(r for r in result["checks"] if r["metric"] == "token_recycling_speedup")
    assert recycling["value"] is None and recycling["met"] is None  # no lines decoded


def test_a_model_or_corpus_that_is_not_there_is_named_before_any_server_starts(
    tmp_path: Path,
) -> None:
    with pytest.raises(SystemExit, match="--model: model folder .* lacks model.onnx"):
        bench.main(["--model", str(tmp_path), "--stdlib", "--no-jedi"])
    with pytest.raises(SystemExit, match="no test.jsonl there"):
        bench.main(["--corpus", str(tmp_path / "no-corpus"), "--no-jedi"])
    with pytest.raises(SystemExit, match="choose one"):
        bench.main(["--corpus", str(tmp_path), "--stdlib"])
