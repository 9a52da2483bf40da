"""CodeFill dual model: losses, soft sharing, the names-only ablation, cache, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fillpoint.models.codefill import (
    CodeFill,
    CodeFillConfig,
    CodeFillStep,
    from_pretrained,
    save_pretrained,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny(**kw: object) -> CodeFill:
    torch.manual_seed(0)
    cfg = CodeFillConfig(n_names=50, n_types=12, block_size=32, n_layer=2, n_head=2, n_embd=16)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return CodeFill(cfg).eval()


def streams(B: int = 2, T: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 50, (B, T), generator=g), torch.randint(0, 12, (B, T), generator=g)


@pytest.mark.parametrize("task", ["ttp", "tvp", "sc"])
def test_each_task_has_a_finite_loss_and_gradients(task: str) -> None:
    model = tiny().train()
    names, types = streams()
    logits, loss = model(names, types, names, types, task=task)
    assert logits.shape[-1] == (12 if task == "ttp" else 50)
    assert torch.isfinite(loss)
    loss.backward()
    used = model.type_decoder if task == "ttp" else model.name_decoder
    assert used.head.weight.grad is not None and used.head.weight.grad.abs().sum() > 0


def test_sharing_penalty_zero_for_identical_layers_positive_otherwise() -> None:
    model = tiny()
    assert model.sharing_penalty().item() == 0.0  # the decoders start identical
    with torch.no_grad():
        model.type_decoder.blocks[0].mlp[0].weight.add_(0.1)
    expected = 0.01 * model.type_decoder.blocks[0].mlp[0].weight.numel()
    assert model.sharing_penalty().item() == pytest.approx(expected, rel=1e-4)
    names, types = streams()
    _, with_penalty = model(names, types, names, types, task="tvp")
    model.config.share_lambda = 0.0
    _, without = model(names, types, names, types, task="tvp")
    assert with_penalty.item() == pytest.approx(without.item() + 1e-3 * expected, rel=1e-4)


def test_penalty_gradient_pulls_the_decoders_together() -> None:
    model = tiny()
    with torch.no_grad():
        model.type_decoder.blocks[0].mlp[0].weight.add_(0.1)
    model.sharing_penalty().backward()
    assert (model.name_decoder.blocks[0].mlp[0].weight.grad < 0).all()
    assert (model.type_decoder.blocks[0].mlp[0].weight.grad > 0).all()


def test_names_only_ignores_types_and_has_no_type_task() -> None:
    model = tiny(names_only=True)
    assert model.type_decoder is None and model.name_decoder.wte is None
    names, types = streams()
    a, _ = model(names, types)
    b, _ = model(names, torch.zeros_like(types))
    assert torch.equal(a, b)
    assert model.sharing_penalty().item() == 0.0
    with pytest.raises(ValueError):
        model(names, types, names, types, task="ttp")
    assert model.num_params() < tiny().num_params() / 1.8


def test_types_change_the_name_prediction() -> None:
    model = tiny()
    names, types = streams()
    a, _ = model(names, types)
    b, _ = model(names, (types + 1) % 12)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("names_only", [False, True])
def test_incremental_decoding_matches_the_full_forward(names_only: bool) -> None:
    model = tiny(names_only=names_only)
    names, types = streams(T=9)
    full_n, full_t, _ = model.step(names, types)
    n, t, past = model.step(names[:, :5], types[:, :5])
    outs_n, outs_t = [n], [t]
    for i in range(5, 9):
        n, t, past = model.step(names[:, i : i + 1], types[:, i : i + 1], past)
        outs_n.append(n)
        outs_t.append(t)
    layers = (1 if names_only else 2) * model.config.n_layer
    assert past.shape[:2] == (layers, 2) and past.shape[-2] == 9
    torch.testing.assert_close(torch.cat(outs_n, 1), full_n, atol=1e-5, rtol=1e-4)
    if not names_only:
        torch.testing.assert_close(torch.cat(outs_t, 1), full_t, atol=1e-5, rtol=1e-4)


def test_step_graph_with_an_empty_cache() -> None:
    model = tiny()
    names, types = streams()
    cfg = model.config
    empty = torch.zeros(2 * cfg.n_layer, 2, 2, cfg.n_head, 0, cfg.n_embd // cfg.n_head)
    name_logits, type_logits, present = CodeFillStep(model)(names, types, empty)
    full, _ = model(names, types)
    torch.testing.assert_close(name_logits, full)
    assert type_logits.shape == (2, 10, 12) and present.shape[4] == 10


@pytest.mark.parametrize("names_only", [False, True])
def test_checkpoint_round_trip(tmp_path: Path, names_only: bool) -> None:
    model = tiny(names_only=names_only)
    save_pretrained(model, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == model.config
    names, types = streams()
    torch.testing.assert_close(loaded(names, types)[0], model(names, types)[0])


def test_last_only_logits_are_the_last_position_of_the_full_forward() -> None:
    model = tiny()
    names, types = streams()
    full_n, full_t, _ = model.step(names, types)
    last_n, last_t, _ = CodeFillStep(model, last_only=True)(names, types, None)
    torch.testing.assert_close(last_n, full_n[:, -1:])
    torch.testing.assert_close(last_t, full_t[:, -1:])
