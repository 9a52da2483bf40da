"""CodeFill on onnxruntime: export parity, next-name candidates, re-ranking, statements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="building a model needs the `train` extra")

from fillpoint.completion.codefill_runtime import WARM_CHUNK, CodeFillRuntime  # noqa: E402
from fillpoint.completion.codefill_streams import (  # noqa: E402
    SPECIALS,
    TYPE_NAMES,
    Vocab,
    encode_types,
    streams,
)
from fillpoint.completion.declarations import Declaration  # noqa: E402
from fillpoint.completion.documents import Document  # noqa: E402
from fillpoint.completion.runtime import stops_with  # noqa: E402
from fillpoint.completion.types import Cancelled, CancelToken, Position  # noqa: E402
from fillpoint.models.codefill import CodeFill, CodeFillConfig, save_pretrained  # noqa: E402
from fillpoint.training.export_codefill import export_onnx, parity, release  # noqa: E402

SNIPPET = """class Counter:
    def __init__(self, start):
        self.total = start

    def add(self, amount):
        self.total = self.total + amount
        return self.total
"""


def fit_snippet(model: CodeFill, vocab: Vocab, steps: int = 150) -> None:
    """Teach a tiny model the snippet by heart (a few seconds on one thread)."""
    names, types = streams(SNIPPET)
    n = torch.tensor([vocab.encode(names) * 3])
    t = torch.tensor([encode_types(types) * 3])
    n, t = n[:, : model.config.block_size + 1], t[:, : model.config.block_size + 1]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(steps):
        task = ("ttp", "tvp")[step % 2]
        _, loss = model(n[:, :-1], t[:, :-1], n[:, 1:], t[:, 1:], task=task)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[CodeFill, Path]:
    """A tiny CodeFill that knows SNIPPET, and its int8 release folder."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    vocab = Vocab(SPECIALS + sorted(set(streams(SNIPPET)[0]) - set(SPECIALS)) + ["unused"])
    cfg = CodeFillConfig(vocab.n_vocab, len(TYPE_NAMES), 128, n_layer=1, n_head=2, n_embd=32)
    model = CodeFill(cfg)
    fit_snippet(model, vocab)
    root = tmp_path_factory.mktemp("codefill")
    save_pretrained(model, root / "checkpoint")
    vocab.save(root / "vocab.json")
    release(root / "checkpoint", root / "vocab.json", root / "release")
    torch.set_num_threads(threads)
    return model, root


@pytest.mark.parametrize("names_only", [False, True])
def test_fp32_export_matches_torch_with_the_cache(tmp_path: Path, names_only: bool) -> None:
    torch.manual_seed(0)
    cfg = CodeFillConfig(50, 12, 32, n_layer=2, n_head=2, n_embd=16, names_only=names_only)
    model = CodeFill(cfg).eval()
    export_onnx(model, tmp_path / "m.onnx")
    assert parity(model, tmp_path / "m.onnx") < 1e-4


def test_a_release_with_one_stacked_cache_still_runs_the_same(
    trained: tuple[CodeFill, Path], tmp_path: Path
) -> None:
    """Releases exported before the per-layer cache (one `past` input and `present` output)
    load and give the logits and cache of the current graph."""
    import shutil
    import warnings

    from fillpoint.models.codefill import CodeFillStep

    model, root = trained
    old = Path(shutil.copytree(root / "release", tmp_path / "old"))
    cfg = model.config
    past = torch.zeros((2 * cfg.n_layer, 2, 1, cfg.n_head, 2, cfg.n_embd // cfg.n_head))
    ids = torch.zeros((1, 3), dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            CodeFillStep(model.float().eval(), last_only=True),
            (ids, ids.clone(), past),
            str(old / "model.onnx"),
            input_names=["names", "types", "past"],
            output_names=["name_logits", "type_logits", "present"],
            dynamic_axes={
                "names": {1: "seq"},
                "types": {1: "seq"},
                "past": {4: "past_seq"},
                "present": {4: "total_seq"},
            },
            opset_version=17,
            dynamo=False,
        )
    stacked, split = CodeFillRuntime(old), CodeFillRuntime(root / "release")
    names, types = split.encode(SNIPPET[:80])
    a_names, a_types, a_past = stacked.run(names, types, stacked.empty_past())
    b_names, b_types, b_past = split.run(names, types, split.empty_past())
    assert a_past.shape == b_past.shape == (2, 2, 1, 2, names.shape[1], 16)
    assert a_types is not None and b_types is not None
    for a, b in ((a_names, b_names), (a_types, b_types), (a_past, b_past)):
        assert np.abs(a - b).max() < 0.5  # fp32 against int8


def test_release_folder_and_int8_parity(trained: tuple[CodeFill, Path]) -> None:
    import json

    _, root = trained
    manifest = json.loads((root / "release" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "vocab.json", "config.json"}
    assert manifest["fp32_parity_max_abs"] < 1e-4
    assert manifest["int8_parity_max_abs"] < 0.5
    assert not (root / "release" / "model.fp32.onnx").exists()


def test_runtime_logits_match_torch(trained: tuple[CodeFill, Path]) -> None:
    model, root = trained
    rt = CodeFillRuntime(root / "release")
    prefix = SNIPPET[: SNIPPET.index("self.total + amount")]
    names, types = rt.encode(prefix)
    got, _, _ = rt.run(names, types, rt.empty_past())
    with torch.no_grad():
        want, _ = model(torch.from_numpy(names), torch.from_numpy(types))
    assert got.shape[1] == 1  # the exported graph returns the last position only
    assert np.abs(got[0, -1] - want[0, -1].numpy()).max() < 0.5  # int8
    assert got[0, -1].argmax() == want[0, -1].argmax()


def test_a_long_prompt_runs_in_chunks_to_the_same_logits_and_cache(
    trained: tuple[CodeFill, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fillpoint.completion import runtime

    _, root = trained
    rt = CodeFillRuntime(root / "release")
    names, types = rt.encode(SNIPPET)
    whole_names, whole_types, whole_past = rt.run(names, types, rt.empty_past(), last=2)
    monkeypatch.setattr(runtime, "PREFILL_CHUNK", 8)
    assert names.shape[1] > 16  # three calls at least
    got_names, got_types, got_past = rt.run(names, types, rt.empty_past(), last=2)
    assert got_names.shape == whole_names.shape and got_past.shape == whole_past.shape
    assert got_types is not None and whole_types is not None
    for a, b in ((got_names, whole_names), (got_types, whole_types), (got_past, whole_past)):
        assert np.abs(a - b).max() < 1e-4


def test_next_names_learnt_from_the_snippet(trained: tuple[CodeFill, Path]) -> None:
    rt = CodeFillRuntime(trained[1] / "release")
    prefix = SNIPPET[: SNIPPET.index("total + amount")]  # ... self.total = self.|
    found = rt.next_names(prefix)
    assert found[0].name == "total"
    assert all(c.name.isidentifier() and c.name not in SPECIALS for c in found)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    assert rt.next_names(prefix, partial="am")[0].name == "amount"
    assert all(c.name.startswith("am") for c in rt.next_names(prefix, partial="am"))


def test_the_prefix_filter_keeps_exactly_the_names_that_extend_the_typed_part(
    trained: tuple[CodeFill, Path],
) -> None:
    rt = CodeFillRuntime(trained[1] / "release")
    prefix = SNIPPET[: SNIPPET.index("total + amount")]
    everything = {c.name: c.probability for c in rt.next_names(prefix, k=len(rt.vocab.names))}
    for partial in ("a", "am", "t", "se", "zz", "self"):
        got = {c.name: c.probability for c in rt.next_names(prefix, partial, k=len(everything))}
        assert got == {n: p for n, p in everything.items() if n.startswith(partial)}


def test_warm_runs_the_prompt_once_and_the_request_reuses_it(
    trained: tuple[CodeFill, Path],
) -> None:
    cold = CodeFillRuntime(trained[1] / "release")
    rt = CodeFillRuntime(trained[1] / "release")
    prefix = SNIPPET[: SNIPPET.index("total + amount")]
    assert rt.warm(prefix) == rt.encode(prefix)[0].shape[1]
    assert rt.warm(prefix) == 0
    ran = rt.names_run
    warm = rt.next_names(prefix, "to")
    assert rt.names_run == ran  # the request ran nothing
    assert warm == cold.next_names(prefix, "to")
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):  # a long prompt checks between chunks
        cold.warm(SNIPPET * 12, cancel)


def test_a_list_cut_short_on_a_long_new_prompt_runs_one_chunk_and_keeps_it(
    trained: tuple[CodeFill, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fillpoint.completion import codefill_runtime

    chunk = 16  # the tiny model's window is short
    monkeypatch.setattr(codefill_runtime, "WARM_CHUNK", chunk)
    rt = CodeFillRuntime(trained[1] / "release")
    prefix = SNIPPET * 12
    assert rt.encode(prefix)[0].shape[1] > 2 * chunk
    cancel = CancelToken()
    run = rt.run

    def run_then_cancel(*args, **kwargs):  # the keystroke arrives during the first call
        cancel.cancel()
        return run(*args, **kwargs)

    rt.run = run_then_cancel  # type: ignore[method-assign]
    with pytest.raises(Cancelled):
        rt.next_names(prefix, "to", cancel=cancel)
    assert rt.names_run == chunk
    rt.run = run  # type: ignore[method-assign]
    assert rt.warm(prefix) == rt.encode(prefix)[0].shape[1] - chunk  # the rest only


def test_declared_names_are_reranked_by_the_table(trained: tuple[CodeFill, Path]) -> None:
    from fillpoint.completion.engine import RERANK

    rt = CodeFillRuntime(trained[1] / "release")
    prefix = SNIPPET[: SNIPPET.index("total + amount")]
    plain = rt.next_names(prefix)
    second = plain[1]
    decl = Declaration("variable", "function")
    boosted = rt.next_names(prefix, scopes={second.name: decl})
    hit = next(c for c in boosted if c.name == second.name)
    assert hit.score == pytest.approx(second.probability * RERANK["variable"]["function"])
    assert hit.probability == second.probability and hit.declared == decl


def test_complete_at_a_document_cursor(trained: tuple[CodeFill, Path]) -> None:
    rt = CodeFillRuntime(trained[1] / "release")
    text = SNIPPET + "\n# a comment"
    in_comment = rt.complete(Document("file:///c.py", text), Position(8, 5))
    assert in_comment.candidates == []
    cut = SNIPPET.index("total + amount") + 2  # "self.to|"
    doc = Document("file:///c.py", SNIPPET[:cut])
    lines = SNIPPET[:cut].split("\n")
    result = rt.complete(doc, Position(len(lines) - 1, len(lines[-1])))
    assert result.partial == "to" and result.cardinal  # after a dot
    assert result.candidates[0].name == "total"


def test_statement_completion_uses_the_cache(trained: tuple[CodeFill, Path]) -> None:
    rt = CodeFillRuntime(trained[1] / "release")
    prefix = SNIPPET[: SNIPPET.index("self.total + amount")]
    assert rt.statement(prefix) == ["self", ".", "total", "+", "amount"]
    assert rt.statement(prefix, max_names=2) == ["self", "."]


def test_names_outside_the_vocabulary_share_the_unknown_probability(
    trained: tuple[CodeFill, Path],
) -> None:
    rt = CodeFillRuntime(trained[1] / "release")
    prefix = SNIPPET[: SNIPPET.index("total + amount")]
    names, types = rt.encode(prefix)
    logits = rt.run(names, types, rt.empty_past())[0][0, -1].astype(np.float64)
    p_unk = np.exp(logits - logits.max())[rt.vocab.unk] / np.exp(logits - logits.max()).sum()
    found = rt.next_names(prefix, k=50, file_names={"zeta": 3, "omega": 1, "total": 9})
    by_name = {c.name: c for c in found}
    assert by_name["zeta"].probability == pytest.approx(p_unk * 3 / 4, rel=1e-5)
    assert by_name["omega"].probability == pytest.approx(p_unk / 4, rel=1e-5)
    assert [c.name for c in found].count("total") == 1  # in the vocabulary: the model's own
    assert "zeta" not in {c.name for c in rt.next_names(prefix, "om", k=50, file_names={"zeta": 3})}


def test_window_cuts_at_a_top_level_line() -> None:
    from fillpoint.completion.codefill_runtime import window

    text = "import os\n\n\ndef f():\n    return 1\n# note\nclass A:\n    x = 1\n"
    assert window(text, 1000) == text
    assert window(text, 20, stride=1) == "class A:\n    x = 1\n"
    assert window(text, 3, stride=1) == text  # no top-level line in the window: all of it
    assert streams(window(text, 20, stride=1), prefix=True)[0][:2] == ["class", "A"]
    grown = text + "y = 2\n"  # the start stays on its grid while the text grows
    assert window(grown, 20, stride=30) == window(text, 20, stride=30) + "y = 2\n"


def test_prompt_cache_reuses_the_common_start_and_changes_nothing(
    trained: tuple[CodeFill, Path],
) -> None:
    cached = CodeFillRuntime(trained[1] / "release")
    cuts = [SNIPPET.index(w) for w in ("self.total = start", "def add", "return self.total")]
    ran = []
    for cut in cuts + cuts[:1]:  # on through the file, then back to the start
        prefix = SNIPPET[:cut]
        fresh = CodeFillRuntime(trained[1] / "release")
        want = [(c.name, round(c.probability, 5)) for c in fresh.next_names(prefix)]
        before = cached.names_run
        assert [(c.name, round(c.probability, 5)) for c in cached.next_names(prefix)] == want
        ran.append((cached.names_run - before, fresh.names_run))
    assert ran[0][0] == ran[0][1]  # nothing cached yet
    assert all(0 < mine < full for mine, full in ran[1:3])  # only the new names ran
    assert ran[3][0] == 1  # a prefix of the cached prompt: its last name runs again


def test_prompt_starts_on_a_stride_grid_in_a_long_file(trained: tuple[CodeFill, Path]) -> None:
    from fillpoint.completion.codefill_runtime import TOKEN_STRIDE

    rt = CodeFillRuntime(trained[1] / "release")
    long = SNIPPET * 12  # about 700 names, more than the 128-name block
    full = streams(long, prefix=True)[0]
    names, types = rt.encode(long)
    n = names.shape[1]
    assert rt.block_size - TOKEN_STRIDE <= n <= rt.block_size and names.shape == types.shape
    assert (len(full) - n) % TOKEN_STRIDE == 0
    assert rt.vocab.decode(names[0].tolist()) == full[len(full) - n :]
    shorter = rt.encode(long[:-40])[0][0]  # a few names less: the same start
    assert shorter[:-1].tolist() == names[0, : len(shorter) - 1].tolist()


def test_the_window_run_ahead_makes_its_move_cost_only_the_new_names(
    trained: tuple[CodeFill, Path],
) -> None:
    rt = CodeFillRuntime(trained[1] / "release")
    cold = CodeFillRuntime(trained[1] / "release")
    long = SNIPPET * 12  # more than the block: the window moves as the text grows
    at = next(  # a cut whose window moves within the next few lines
        cut
        for cut in range(len(long) // 2, len(long), 7)
        if rt.ahead(long[:cut]) is not None
        and rt.encode(long[:cut])[0][0, 0] != rt.encode(long[: cut + 120])[0][0, 0]
    )
    assert rt.warm(long[:at]) > 0
    ahead = rt.ahead(long[:at])
    assert ahead is not None
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):  # stopped after its first chunk: that stays kept
        rt.warm(long[:at], cancel, ahead=True)
    assert rt.warm(long[:at], ahead=True) == max(0, ahead[0].shape[1] - WARM_CHUNK)
    assert rt.warm(long[:at], ahead=True) == 0
    later = long[: at + 120]  # the window has moved to the one run ahead
    stopped = CancelToken()
    stopped.cancel()
    with pytest.raises(Cancelled), stops_with(stopped):  # a stopped move keeps the window
        rt.next_names(later)
    assert rt._ahead is not None
    before = rt.names_run
    got = [(c.name, round(c.probability, 4)) for c in rt.next_names(later)]
    new = rt.encode(later)[0].shape[1] - ahead[0].shape[1] + 1  # the last one ran again
    assert rt.names_run - before <= new < rt.encode(later)[0].shape[1]  # not the whole window
    assert got == [(c.name, round(c.probability, 4)) for c in cold.next_names(later)]
    assert rt._ahead is None  # its keys/values are the prompt's now


def test_a_broken_model_folder_is_an_engine_error(trained: tuple[CodeFill, Path], tmp_path) -> None:
    import shutil

    from fillpoint.completion.types import EngineError

    folder = tmp_path / "broken"
    shutil.copytree(trained[1] / "release", folder)
    (folder / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(EngineError):
        CodeFillRuntime(folder)
    (folder / "vocab.json").unlink()
    with pytest.raises(EngineError):
        CodeFillRuntime(folder)
