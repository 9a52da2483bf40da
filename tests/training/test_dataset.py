"""Dataset: encoded splits joined by end-of-text, and (FIM-augmented) training windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from fillpoint.training.dataset import Batches, encode_split
from fillpoint.training.tokentypes import EOT_TYPE, FIM_TYPE, TYPE_ID

EOT, PREFIX, SUFFIX, MIDDLE = 0, 2, 3, 4
FIM = (PREFIX, SUFFIX, MIDDLE)
FILES = ["def f(x):\n    return x + 1\n", "import os\nprint(os.sep)\n", "s = 'naïve ✓'\n"]


def counting_batches(n: int, block: int, fim_rate: float, seed: int = 0) -> Batches:
    """Batches over the ids 10, 11, 12, ...: any window's body is recognisably contiguous."""
    ids = np.arange(10, 10 + n, dtype=np.uint16)
    types = np.full(n, TYPE_ID["NAME"], dtype=np.uint8)
    return Batches(ids, types, block, FIM, EOT, fim_rate=fim_rate, seed=seed)


def split_fim(row: np.ndarray) -> tuple[str, list[int], list[int], list[int]]:
    """Undo the FIM rearrangement of one row: (order, prefix, middle, suffix)."""
    assert [t for t in row if t in FIM] == [PREFIX, SUFFIX, MIDDLE]
    p, s, m = (int(np.flatnonzero(row == t)[0]) for t in FIM)
    assert row[-1] == EOT and EOT not in row[:-1]
    if s == p + 1:  # SPM: <pre><suf> suffix <mid> prefix middle <eot>
        suffix = row[s + 1 : m].tolist()
        return "SPM", [], row[m + 1 : -1].tolist(), suffix
    return "PSM", row[p + 1 : s].tolist(), row[m + 1 : -1].tolist(), row[s + 1 : m].tolist()


def write_corpus(folder: Path, texts: list[str]) -> Path:
    """A corpus folder with `texts` as the train split."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps({"package": "p", "path": f"m{i}.py", "text": text}) + "\n")
    return folder


def test_encode_split_joins_files_with_end_of_text(
    tmp_path: Path, tokenizer_path: Path, tokenizer: Tokenizer
) -> None:
    corpus = write_corpus(tmp_path / "corpus", FILES)
    info = encode_split(corpus, "train", tokenizer_path, tmp_path / "tokens", jobs=1)
    ids = np.load(tmp_path / "tokens" / "train.ids.npy")
    types = np.load(tmp_path / "tokens" / "train.types.npy")
    assert ids.dtype == np.uint16 and types.dtype == np.uint8 and ids.shape == types.shape
    ends = np.flatnonzero(ids == EOT)
    assert len(ends) == len(FILES) and ends[-1] == len(ids) - 1
    assert (types[ends] == EOT_TYPE).all()
    pieces = np.split(ids, ends + 1)[:-1]
    assert [tokenizer.decode(p[:-1].tolist()) for p in pieces] == FILES
    assert [p[:-1].tolist() for p in pieces] == [tokenizer.encode(t).ids for t in FILES]
    assert info == {"split": "train", "files": 3, "tokens": len(ids), "chars": len("".join(FILES))}
    assert json.loads((tmp_path / "tokens" / "train.json").read_text()) == info
    assert TYPE_ID["KEYWORD"] in types and TYPE_ID["STRING"] in types


def test_encode_split_max_files_and_empty_split(tmp_path: Path, tokenizer_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", FILES)
    (corpus / "valid.jsonl").write_text("")
    info = encode_split(corpus, "train", tokenizer_path, tmp_path / "t", jobs=1, max_files=1)
    assert info["files"] == 1 and info["chars"] == len(FILES[0])
    empty = encode_split(corpus, "valid", tokenizer_path, tmp_path / "t", jobs=1)
    assert empty["tokens"] == 0 and np.load(tmp_path / "t" / "valid.ids.npy").shape == (0,)


def test_sample_shapes_and_plain_windows() -> None:
    batches = counting_batches(1000, block=32, fim_rate=0.0)
    ids, types = batches.sample(8)
    assert ids.shape == types.shape == (8, 33) and ids.dtype == types.dtype == np.int64
    for row in ids:  # a contiguous slice of the data
        assert (np.diff(row) == 1).all() and 10 <= row[0] and row[-1] < 1010


def test_a_split_of_exactly_one_window_can_be_sampled() -> None:
    ids, _ = counting_batches(17, block=16, fim_rate=0.0).sample(2)
    assert (ids == np.arange(10, 27)).all()


def test_same_seed_same_batches() -> None:
    a = counting_batches(500, 16, 0.5, seed=3).sample(4)
    b = counting_batches(500, 16, 0.5, seed=3).sample(4)
    c = counting_batches(500, 16, 0.5, seed=4).sample(4)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert not (a[0] == c[0]).all()


def test_fim_rows_keep_length_and_rearrange_a_contiguous_window() -> None:
    block = 24
    ids, types = counting_batches(2000, block, fim_rate=1.0, seed=7).sample(200)
    orders = set()
    for row, trow in zip(ids, types, strict=True):
        assert len(row) == block + 1
        order, prefix, middle, suffix = split_fim(row)
        orders.add(order)
        # in SPM order the prefix runs straight into the middle: split_fim returns both as one
        body = prefix + middle + suffix
        assert len(body) == block + 1 - 4
        assert body == list(range(body[0], body[0] + len(body)))
        assert (trow[np.isin(row, FIM)] == FIM_TYPE).all() and trow[-1] == EOT_TYPE
        assert (trow[~np.isin(row, (*FIM, EOT))] == TYPE_ID["NAME"]).all()
    assert orders == {"PSM", "SPM"}


def test_fim_rate_is_roughly_respected() -> None:
    ids, _ = counting_batches(2000, 16, fim_rate=0.5, seed=1).sample(400)
    share = np.isin(ids, FIM).any(axis=1).mean()
    assert 0.4 < share < 0.6


def test_middle_is_followed_by_end_of_text_in_real_data(tokenizer_path: Path) -> None:
    tok = Tokenizer.from_file(str(tokenizer_path))
    text = "".join(FILES[:2]) * 20  # ASCII: a window never starts inside a character
    ids = np.asarray(tok.encode(text).ids, dtype=np.uint16)
    batches = Batches(ids, np.zeros_like(ids, dtype=np.uint8), 32, FIM, EOT, fim_rate=1.0)
    rows, _ = batches.sample(50)
    for row in rows:
        order, prefix, middle, suffix = split_fim(row)
        assert tok.decode(prefix + middle + suffix) in text


@pytest.mark.parametrize("bad", [0, 15])
def test_too_little_data_for_one_window_is_an_error(bad: int) -> None:
    with pytest.raises(ValueError):
        counting_batches(bad, block=16, fim_rate=0.0).sample(1)
