"""CodeFill data and training: aligned streams, identifier roles, encoding, a tiny run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fillpoint.models.codefill import from_pretrained
from fillpoint.training.codefill_data import (
    EOS,
    N_TYPES,
    NUM,
    STR,
    TYPE_ID,
    TYPE_NAMES,
    Vocab,
    build,
    streams,
)
from fillpoint.training.train_codefill import (
    CodeFillTrainConfig,
    make_batch,
    statement_starts,
    task_probs,
    train,
)

SAMPLE = '''import os.path as osp
from collections import OrderedDict as OD, deque


class Point(Base):
    """A point."""

    def __init__(self, x, y=1, *args, **kw):
        self.x = x  # a comment
        self.y += norm(y, scale=2.5)
        v = self.move(f"{x}", b"raw")
        return [i for i in v if i.ok]
'''


def roles(text: str) -> dict[str, list[str]]:
    """Every type each name takes in `text`."""
    out: dict[str, list[str]] = {}
    for name, typ in zip(*streams(text), strict=True):
        out.setdefault(name, []).append(typ)
    return out


def test_streams_are_aligned_and_drop_comments() -> None:
    names, types = streams(SAMPLE)
    assert len(names) == len(types) > 50
    assert all(t in TYPE_ID for t in types)
    assert "#" not in "".join(names) and "comment" not in names
    assert 60 <= N_TYPES <= 110 and len(set(TYPE_NAMES)) == N_TYPES


def test_identifier_roles() -> None:
    r = roles(SAMPLE)
    assert r["os"] == ["IMPORT_MODULE"] and r["osp"] == ["IMPORT_ALIAS"]
    assert r["OrderedDict"] == ["IMPORT_NAME"] and r["OD"] == ["IMPORT_ALIAS"]
    assert r["Point"] == ["CLASS_DEF"] and r["__init__"] == ["FUNCTION_DEF"]
    assert r["args"] == ["PARAMETER"] and r["kw"] == ["PARAMETER"]
    assert r["x"] == ["PARAMETER", "ATTRIBUTE_STORE", "VARIABLE"]  # not inside the f-string
    assert r["self"] == ["PARAMETER", "SELF", "SELF", "SELF"]
    assert r["norm"] == ["CALL"] and r["move"] == ["METHOD_CALL"] and r["ok"] == ["ATTRIBUTE"]
    assert r["scale"] == ["KEYWORD_ARG"] and r["v"] == ["VARIABLE_STORE", "VARIABLE"]
    assert r["i"] == ["VARIABLE", "VARIABLE_STORE", "VARIABLE"]
    assert r["return"] == ["KW_return"] and r["+="] == ["AUGASSIGN"] and r["."][0] == "DOT"


def test_literals_are_abstracted_and_statements_end_in_eos() -> None:
    r = roles(SAMPLE)
    assert r[STR] == ["DOCSTRING"] and r["<FSTR>"] == ["FSTRING"] and r["<BYTES>"] == ["BYTES"]
    assert r[NUM] == ["NUMBER", "NUMBER"]
    names, _ = streams("x = 1\nif x:\n    y = 'a'\n")
    assert names == ["x", "=", NUM, EOS, "if", "x", ":", EOS, "<INDENT>", "y", "=", STR, EOS,
                     "<DEDENT>"]  # fmt: skip


def test_non_ascii_columns_and_half_written_code() -> None:
    assert roles("s = 'é'; s.upper()\n")["upper"] == ["METHOD_CALL"]
    names, types = streams("def f(a):\n    return g(a.b, ")
    assert names[-4:] == ["(", "a", ".", "b"] or names[-5:-1] == ["(", "a", ".", "b"]
    assert types[names.index("g")] == "CALL" and len(names) == len(types)


def test_build_writes_aligned_arrays_and_a_vocab(small_corpus: Path, tmp_path: Path) -> None:
    infos = build(small_corpus, tmp_path, vocab_size=300, max_files=6, jobs=1)
    assert [i["split"] for i in infos] == ["train", "valid", "test"]
    vocab = Vocab.from_file(tmp_path / "vocab.json")
    assert vocab.n_vocab == 300 and vocab.names[:4] == ["<pad>", "<unk>", "<eot>", EOS]
    for info in infos:
        names = np.load(tmp_path / f"{info['split']}.names.npy")
        types = np.load(tmp_path / f"{info['split']}.types.npy")
        assert names.dtype == np.uint16 and types.dtype == np.uint8
        assert len(names) == len(types) == info["tokens"]
        assert (names == vocab.ids["<eot>"]).sum() == info["files"]
        assert types.max(initial=0) < N_TYPES and names.max(initial=0) < 300
    assert infos[0]["tokens"] > 1000 and infos[0]["unk_rate"] < 0.5


def test_sc_targets_skip_statement_starts() -> None:
    vocab = SPECIALS_VOCAB
    starts = torch.tensor(statement_starts(vocab))
    ids = [vocab.index(n) for n in ["x", "=", "y", EOS, "z", "(", ")", EOS, "x"]]
    batch = (np.asarray([ids]), np.zeros((1, len(ids)), np.int64))
    _, _, tvp, _ = make_batch(batch, "tvp", starts, "cpu")
    _, _, sc, _ = make_batch(batch, "sc", starts, "cpu")
    assert tvp[0].tolist() == ids[1:]
    assert sc[0].tolist() == ids[1:4] + [-100] + ids[5:8] + [-100]


SPECIALS_VOCAB = ["<pad>", "<unk>", "<eot>", EOS, "<INDENT>", "<DEDENT>", "x", "=", "y", "z",
                  "(", ")"]  # fmt: skip


def test_task_probabilities() -> None:
    assert task_probs(CodeFillTrainConfig()).tolist() == pytest.approx([0.2, 0.4, 0.4])
    names_only = task_probs(CodeFillTrainConfig(names_only=True))
    assert names_only.tolist() == pytest.approx([0.0, 0.5, 0.5])


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("names_only", [False, True])
def test_tiny_training_run_saves_and_resumes(tmp_path: Path, names_only: bool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Vocab(SPECIALS_VOCAB).save(data / "vocab.json")
    cycle = [SPECIALS_VOCAB.index(n) for n in ["x", "=", "y", EOS, "z", "(", ")", EOS]]
    names = np.resize(np.asarray(cycle, np.uint16), 3000)
    types = np.resize(np.asarray([1, 2, 3, 4, 5, 6, 7, 4], np.uint8), 3000)
    for split in ("train", "valid"):
        np.save(data / f"{split}.names.npy", names)
        np.save(data / f"{split}.types.npy", types)
    cfg = CodeFillTrainConfig(
        data=str(data), out=str(tmp_path / "run"), n_layer=1, n_head=2, n_embd=32,
        block_size=16, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=2, max_steps=30,
        eval_every=10, eval_batches=1, log_every=1, bf16=False, device="cpu",
        names_only=names_only,
    )  # fmt: skip
    run = train(cfg)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(30))
    assert {r["task"] for r in rows} == ({"tvp", "sc"} if names_only else {"ttp", "tvp", "sc"})
    val = [r for r in rows if "val_tvp" in r]
    assert len(val) == 4 and val[-1]["val_tvp"] < 0.5 * val[0]["val_tvp"]
    assert ("val_ttp" in val[-1]) != names_only
    assert (run / "loss.png").exists()
    model = from_pretrained(run / "checkpoint")
    assert model.config.names_only == names_only and model.config.n_names == len(SPECIALS_VOCAB)
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 30
    train(replace(cfg, max_steps=33))  # resumes from step 30
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 32
