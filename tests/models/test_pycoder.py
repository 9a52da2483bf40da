"""PyCoder: shapes, the 0.9/0.1 multitask loss, the KV cache, and pickle-free checkpoints."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fillpoint.models.pycoder import (
    PyCoder,
    PyCoderConfig,
    PyCoderStep,
    from_pretrained,
    save_pretrained,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

V, N_TYPES, BLOCK = 97, 11, 32


def make(**kw: object) -> PyCoder:
    """A small seeded model in eval mode."""
    torch.manual_seed(0)
    base = {"vocab_size": V, "n_types": N_TYPES, "block_size": BLOCK, "n_layer": 2, "n_head": 4}
    return PyCoder(PyCoderConfig(**{**base, "n_embd": 32, **kw})).eval()


def ids(b: int, t: int, seed: int = 1) -> torch.Tensor:
    """Random token ids (B, T)."""
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def test_forward_shapes_and_inference_without_loss() -> None:
    model = make()
    logits, loss = model(ids(3, 10))
    assert logits.shape == (3, 10, V) and loss is None
    h, present = model.hidden(ids(3, 10))
    assert h.shape == (3, 10, 32)
    assert present.shape == (2, 2, 3, 4, 10, 8)  # (L, k/v, B, H, T, D)


def test_loss_is_point_nine_token_plus_point_one_type_cross_entropy() -> None:
    model = make()
    x, y = ids(2, 12, seed=1), ids(2, 12, seed=2)
    t = torch.randint(0, N_TYPES, (2, 12), generator=torch.Generator().manual_seed(3))
    logits, loss = model(x, y, t)
    h, _ = model.hidden(x)
    token_ce = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    type_ce = F.cross_entropy(model.type_head(h).reshape(-1, N_TYPES), t.reshape(-1))
    assert type_ce.item() > 1.0 and token_ce.item() > 1.0  # both terms matter
    assert loss.item() == pytest.approx(0.9 * token_ce.item() + 0.1 * type_ce.item(), rel=1e-6)
    _, token_only = model(x, y)
    assert token_only.item() == pytest.approx(token_ce.item(), rel=1e-6)


def test_dropout_acts_in_training_only() -> None:
    model = make(dropout=0.5)
    x = ids(2, 12)
    expected, _ = make()(x)  # same seed, same weights, no dropout
    assert torch.allclose(model(x)[0], expected)
    model.train()
    torch.manual_seed(1)
    first, _ = model(x)
    second, _ = model(x)
    assert not torch.allclose(first, second) and not torch.allclose(first, expected)


def test_loss_ignores_masked_targets_and_type_weight_zero() -> None:
    model = make()
    x, y = ids(1, 8, seed=1), ids(1, 8, seed=2)
    t = torch.zeros(1, 8, dtype=torch.long)
    masked = y.clone()
    masked[0, 4:] = -100
    logits, loss = model(x, masked)
    ref = F.cross_entropy(logits[0, :4], y[0, :4])
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    no_type = make(type_loss_weight=0.0)
    _, loss = no_type(x, y, t)
    _, token_only = no_type(x, y)
    assert loss.item() == token_only.item()


def test_loss_backpropagates_into_both_heads() -> None:
    model = make(tie_weights=False)
    _, loss = model(ids(2, 6), ids(2, 6, seed=4), torch.zeros(2, 6, dtype=torch.long))
    loss.backward()
    assert model.type_head.weight.grad.abs().sum() > 0
    assert model.lm_head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("chunks", [[1] * 9, [4, 1, 1, 3], [2, 7]])
def test_incremental_decoding_matches_the_full_forward(chunks: list[int]) -> None:
    model = make()
    seq = ids(2, sum(chunks))
    with torch.no_grad():
        full, full_present = model.hidden(seq)
        past, parts, start = None, [], 0
        for n in chunks:
            h, past = model.hidden(seq[:, start : start + n], past)
            parts.append(h)
            start += n
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)
    assert torch.allclose(past, full_present, atol=1e-5)


def test_empty_cache_and_step_graph_match_the_model() -> None:
    model = make()
    seq = ids(2, 7)
    empty = torch.zeros(2, 2, 2, 4, 0, 8)
    with torch.no_grad():
        logits, present = PyCoderStep(model)(seq, empty)
        ref, _ = model(seq)
    assert torch.allclose(logits, ref, atol=1e-5)
    assert present.shape == (2, 2, 2, 4, 7, 8)


def test_a_tree_mask_with_positions_matches_decoding_each_branch() -> None:
    model = make()
    prompt, a, b = ids(1, 6), ids(1, 3, seed=7), ids(1, 2, seed=8)
    # one call for the tree: branch a (3 tokens) and branch b (2 tokens), both after prompt
    tree = torch.cat([a, b], dim=1)  # (1, 5)
    parent = [-1, 0, 1, -1, 3]
    mask = torch.zeros(1, 5, 6 + 5, dtype=torch.bool)
    mask[:, :, :6] = True
    depth = []
    for i in range(5):
        j, d = i, 0
        while j != -1:
            mask[0, i, 6 + j] = True
            j, d = parent[j], d + 1
        depth.append(6 + d - 1)
    step = PyCoderStep(model)
    with torch.no_grad():
        _, past = model.hidden(prompt)
        got, present = step(tree, past, mask, torch.tensor([depth]))
        ref_a, _ = step(a, past)
        ref_b, _ = step(b, past)
        default, _ = step(a, past, None, None)
    assert torch.allclose(got[:, :3], ref_a, atol=1e-5)
    assert torch.allclose(got[:, 3:], ref_b, atol=1e-5)
    assert torch.equal(default, ref_a)
    assert present.shape[4] == 6 + 5


def test_the_cache_is_causal_a_later_token_changes_nothing_before_it() -> None:
    model = make()
    a, b = ids(1, 8, seed=5), ids(1, 8, seed=5)
    b[0, -1] = (b[0, -1] + 1) % V
    with torch.no_grad():
        ha, _ = model.hidden(a)
        hb, _ = model.hidden(b)
    assert torch.allclose(ha[:, :-1], hb[:, :-1], atol=1e-6)
    assert not torch.allclose(ha[:, -1], hb[:, -1], atol=1e-3)


def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def assert_no_pickles(folder: Path) -> None:
    """Only config.json and model.safetensors, and neither is a pickle or a torch zip."""
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    for path in folder.iterdir():
        head = path.read_bytes()[:2]
        assert head != b"PK" and head[:1] != b"\x80", path  # torch.save zip / pickle protocol


@pytest.mark.parametrize("tied", [True, False])
def test_save_and_load_round_trip(tmp_path: Path, tied: bool) -> None:
    model = make(n_embd=16)
    if not tied:
        model.untie()
        with torch.no_grad():
            model.lm_head.weight.mul_(2.0)  # now really different from the embedding
    save_pretrained(model, tmp_path)
    assert_no_pickles(tmp_path)
    header = read_safetensors_header(tmp_path / "model.safetensors")
    assert ("lm_head.weight" in header) is not tied
    assert json.loads((tmp_path / "config.json").read_text())["architecture"] == "pycoder"

    loaded = from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    assert (loaded.lm_head.weight is loaded.wte.weight) is tied
    seq = ids(2, 9)
    with torch.no_grad():
        assert torch.equal(loaded(seq)[0], model(seq)[0])


def test_untie_copies_the_head_and_counts_it() -> None:
    model = make(n_embd=16)
    tied_params = model.num_params()
    model.untie()
    assert model.lm_head.weight is not model.wte.weight
    assert torch.equal(model.lm_head.weight, model.wte.weight)
    assert not model.config.tie_weights
    assert model.num_params() == tied_params + V * 16
    model.untie()  # idempotent
    assert model.num_params() == tied_params + V * 16


def test_config_round_trip(tmp_path: Path) -> None:
    cfg = PyCoderConfig(vocab_size=10, n_layer=3, dropout=0.1)
    cfg.save(tmp_path / "config.json")
    assert PyCoderConfig.load(tmp_path / "config.json") == cfg
