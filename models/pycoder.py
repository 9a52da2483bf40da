"""PyCoder-style decoder: a GPT-2-style transformer with a next-token and a next-type head.

The type head is an auxiliary task (loss 0.9 * CE(token) + 0.1 * CE(type)); at inference only
the token head runs. Attention takes an optional cache of past keys/values so the exported ONNX
graph decodes incrementally, and an optional explicit mask with position ids so one call can
verify a tree of draft tokens (each one sees the cache and its own ancestors only).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Self

import torch
import torch.nn as nn
import torch.nn.functional as F

KV = tuple[torch.Tensor, torch.Tensor] | torch.Tensor  # one layer's keys and values: kv[0], kv[1]


def paired(flat: Sequence[torch.Tensor]) -> list[KV]:
    """A per-layer cache from its tensors in graph order (k_0, v_0, k_1, ...)."""
    return [(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)]


def flattened(pairs: Sequence[KV]) -> list[torch.Tensor]:
    """A per-layer cache as its tensors in graph order (k_0, v_0, k_1, ...)."""
    return [t for kv in pairs for t in kv]


def stacked(pairs: Sequence[KV]) -> torch.Tensor:
    """A per-layer cache as one tensor (L, 2, B, H, P, D)."""
    return torch.stack([torch.stack(list(kv)) for kv in pairs])


class ConfigFile:
    """config.json for a dataclass model config, tagged with its architecture."""

    architecture: ClassVar[str]

    def save(self, path: Path) -> None:
        """Write config.json."""
        data = {"architecture": self.architecture, **asdict(self)}  # type: ignore[call-overload]
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read config.json."""
        data = json.loads(path.read_text())
        data.pop("architecture", None)
        return cls(**data)


@dataclass
class PyCoderConfig(ConfigFile):
    architecture: ClassVar[str] = "pycoder"
    vocab_size: int = 8192  # BPE vocabulary, special tokens included
    n_types: int = 64  # lexical token types predicted by the auxiliary head
    block_size: int = 256  # longest sequence seen in training
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0
    type_loss_weight: float = 0.1  # PyCoder's best: 0.9 token / 0.1 type
    tie_weights: bool = True  # tied in training; untied at export so int8 covers the head


class SelfAttention(nn.Module):
    def __init__(self, cfg: PyCoderConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, past: KV | None = None, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, KV]:
        B, T, C = x.shape
        D = C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, D).transpose(1, 2)
        v = v.view(B, T, self.n_head, D).transpose(1, 2)
        if past is not None:  # past: keys and values (B, H, P, D)
            k = torch.cat([past[0], k], dim=2)  # (B, H, P+T, D)
            v = torch.cat([past[1], v], dim=2)
            if mask is None:
                P = past[0].shape[2]
                # query i (absolute position P+i) sees keys 0..P+i
                mask = torch.arange(k.shape[2], device=x.device)[None, :] <= (
                    P + torch.arange(T, device=x.device)[:, None]
                )
            else:
                mask = mask[:, None]  # (B, 1, T, P+T): the same for every head
            # Written out rather than scaled_dot_product_attention, whose export scales the
            # transposed keys: here the transpose feeds the matmul directly, which
            # onnxruntime fuses into one product that reads the cache in place instead of
            # copying all of it on every call.
            att = (q * (1.0 / math.sqrt(D))) @ k.transpose(-2, -1)  # (B, H, T, P+T)
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = att @ v
        else:
            drop = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: PyCoderConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd),
        )
        self.dropout = cfg.dropout  # on both residual branches, in training only

    def _drop(self, y: torch.Tensor) -> torch.Tensor:
        return F.dropout(y, self.dropout, True) if self.training and self.dropout else y

    def forward(
        self, x: torch.Tensor, past: KV | None = None, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, KV]:
        a, present = self.attn(self.ln_1(x), past, mask)
        x = x + self._drop(a)
        return x + self._drop(self.mlp(self.ln_2(x))), present


class PyCoder(nn.Module):
    def __init__(self, cfg: PyCoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.type_head = nn.Linear(cfg.n_embd, cfg.n_types)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters, counting a tied head once."""
        return sum(p.numel() for p in self.parameters())

    def hidden(
        self,
        ids: torch.Tensor,
        past: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states (B, T, C) and the new cache (L, 2, B, H, P+T, D).

        Without `attn_mask` (bool (B, T, P+T), True = may attend) attention is causal over
        the cache; without `position_ids` (B, T) the tokens follow the cache. Both only
        apply with a cache: training runs neither.
        """
        start, pairs = (0, None) if past is None else (past.shape[4], list(past))
        h, presents = self.layers(ids, pairs, attn_mask, position_ids, start)
        return h, stacked(presents)

    def layers(
        self,
        ids: torch.Tensor,
        past: Sequence[KV] | None,
        attn_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        start: int = 0,
    ) -> tuple[torch.Tensor, list[KV]]:
        """`hidden` with the cache as one (keys, values) pair per layer, each (B, H, P, D),
        and tokens after `start` when no positions are given."""
        T = ids.shape[1]
        if position_ids is None:
            position_ids = torch.arange(start, start + T, device=ids.device)
        x = self.wte(ids) + self.wpe(position_ids)  # (B, T, C)
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, None if past is None else past[i], attn_mask)
            presents.append(present)
        return self.ln_f(x), presents

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        type_targets: torch.Tensor | None = None,
        ignore_index: int = -100,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V); with targets, the 0.9/0.1 multitask loss."""
        h, _ = self.hidden(ids)
        logits = self.lm_head(h)
        if targets is None:
            return logits, None
        V = logits.shape[-1]
        tok_loss = F.cross_entropy(
            logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=ignore_index
        )
        if type_targets is None or self.config.type_loss_weight == 0.0:
            return logits, tok_loss
        type_logits = self.type_head(h)
        type_loss = F.cross_entropy(
            type_logits.reshape(-1, type_logits.shape[-1]).float(),
            type_targets.reshape(-1),
            ignore_index=ignore_index,
        )
        w = self.config.type_loss_weight
        return logits, (1 - w) * tok_loss + w * type_loss

    def untie(self) -> None:
        """Give the output head its own copy of the embedding (for export and quantization)."""
        if self.lm_head.weight is self.wte.weight:
            self.lm_head.weight = nn.Parameter(self.wte.weight.detach().clone())
        self.config.tie_weights = False


class PyCoderStep(nn.Module):
    """One decoding call: (ids, past, attn_mask, position_ids) -> (logits, present), the
    cache stacked as (L, 2, B, H, P, D) (the graph of releases before `PyCoderSplitStep`).

    One call per decoding step, or per draft tree; mask and positions are explicit so the
    caller decides what each new token sees (the causal defaults for plain decoding).
    """

    def __init__(self, model: PyCoder) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        ids: torch.Tensor,
        past: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, present = self.model.hidden(ids, past, attn_mask, position_ids)
        return self.model.lm_head(h), present


class PyCoderSplitStep(PyCoderStep):
    """The exported graph, with one cache tensor per layer and kind: (ids, attn_mask,
    position_ids, k_0, v_0, k_1, ...) -> (logits, k_0', v_0', ...), each (B, H, P, D).

    The runtime hands views of its one cache array to the inputs and lets the outputs write
    into views of the next one: the graph then copies the cache once per call (the append),
    where one stacked cache input costs a split and a stack more.
    """

    def forward(  # type: ignore[override]
        self,
        ids: torch.Tensor,
        attn_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        h, presents = self.model.layers(ids, paired(past), attn_mask, position_ids)
        return (self.model.lm_head(h), *flattened(presents))


def save_pretrained(model: PyCoder, folder: Path) -> None:
    """HF-style checkpoint: config.json + model.safetensors (never a pickle)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.config.save(folder / "config.json")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_weights:
        state.pop("lm_head.weight", None)
    save_file(state, str(folder / "model.safetensors"))


def from_pretrained(folder: Path) -> PyCoder:
    """Rebuild a model from its folder alone."""
    from safetensors.torch import load_file

    cfg = PyCoderConfig.load(folder / "config.json")
    model = PyCoder(cfg)
    state = load_file(str(folder / "model.safetensors"))
    if cfg.tie_weights:
        state["lm_head.weight"] = state["wte.weight"]
    model.load_state_dict(state)
    return model
