"""CodeFill-style dual model: a name decoder and a type decoder with soft parameter sharing.

Both decoders read both streams (the sum of a name and a type embedding at each position).
The name decoder predicts the next name, the type decoder the next type. Soft parameter
sharing adds lambda * sum ||theta_name - theta_type||^2 over corresponding transformer-layer
weights to the loss (the decoders start identical and drift apart only as far as their tasks
pay for). With `names_only` there is one decoder that reads names alone (the ablation).

The cache `past` stacks both decoders' layers: (S * L, 2, B, H, P, D), S = 2 decoders
(1 with names_only), name decoder first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pycoder import KV, Block, ConfigFile, flattened, paired, stacked

TASKS = ("ttp", "tvp", "sc")  # next type, next name (value), statement completion


@dataclass
class CodeFillConfig(ConfigFile):
    architecture: ClassVar[str] = "codefill"
    n_names: int = 16384  # name vocabulary, specials included
    n_types: int = 97  # syntax types (training/codefill_data.TYPE_NAMES)
    block_size: int = 256  # longest sequence seen in training
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0
    share_lambda: float = 1e-3  # weight of the soft-sharing penalty
    names_only: bool = False  # ablation: no type stream, no type decoder


class Decoder(nn.Module):
    """One GPT-style decoder over the summed name (+ type) embeddings, with its own head."""

    def __init__(self, cfg: CodeFillConfig, n_out: int, with_types: bool) -> None:
        super().__init__()
        self.wne = nn.Embedding(cfg.n_names, cfg.n_embd)
        self.wte = nn.Embedding(cfg.n_types, cfg.n_embd) if with_types else None
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))  # type: ignore[arg-type]
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, n_out, bias=False)

    def forward(
        self,
        names: torch.Tensor,
        types: torch.Tensor | None,
        past: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, n_out), or (B, 1, n_out) for the last position only, and this
        decoder's new cache (L, 2, B, H, P+T, D)."""
        pairs = None if past is None else list(past)
        logits, presents = self.layers(names, types, pairs, last_only)
        return logits, stacked(presents)

    def layers(
        self,
        names: torch.Tensor,
        types: torch.Tensor | None,
        past: Sequence[KV] | None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, list[KV]]:
        """`forward` with the cache as one (keys, values) pair per layer, each (B, H, P, D)."""
        T = names.shape[1]
        start = 0 if past is None else past[0][0].shape[2]
        pos = torch.arange(start, start + T, device=names.device)
        x = self.wne(names) + self.wpe(pos)  # (B, T, C)
        if self.wte is not None:
            x = x + self.wte(types)
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, None if past is None else past[i])
            presents.append(present)
        x = self.ln_f(x)
        if last_only:  # a prompt needs one prediction: skip the head's largest matmul
            x = x[:, -1:]
        return self.head(x), presents


class CodeFill(nn.Module):
    def __init__(self, cfg: CodeFillConfig) -> None:
        super().__init__()
        self.config = cfg
        with_types = not cfg.names_only
        self.name_decoder = Decoder(cfg, cfg.n_names, with_types)
        self.type_decoder = None if cfg.names_only else Decoder(cfg, cfg.n_types, True)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        if self.type_decoder is not None:  # soft sharing starts from identical layers
            self.type_decoder.blocks.load_state_dict(self.name_decoder.blocks.state_dict())

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """All parameters of both decoders."""
        return sum(p.numel() for p in self.parameters())

    def sharing_penalty(self) -> torch.Tensor:
        """sum ||theta_name - theta_type||^2 over corresponding transformer-layer weights."""
        ref = self.name_decoder.wpe.weight
        if self.type_decoder is None:
            return ref.new_zeros(())
        pairs = zip(
            self.name_decoder.blocks.parameters(),
            self.type_decoder.blocks.parameters(),
            strict=True,
        )
        return sum(((a.float() - b.float()) ** 2).sum() for a, b in pairs)  # type: ignore[return-value]

    def step(
        self,
        names: torch.Tensor,
        types: torch.Tensor,
        past: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Name logits (B, T, N), type logits (B, T, K) or None, and the cache (S*L, ...);
        with `last_only` the logits are those of the last position, (B, 1, ...)."""
        L = self.config.n_layer
        p_name, p_type = (None, None) if past is None else (past[:L], past[L:])
        name_logits, present = self.name_decoder(names, types, p_name, last_only)
        if self.type_decoder is None:
            return name_logits, None, present
        type_logits, type_present = self.type_decoder(names, types, p_type, last_only)
        return name_logits, type_logits, torch.cat([present, type_present])

    def forward(
        self,
        names: torch.Tensor,
        types: torch.Tensor,
        name_targets: torch.Tensor | None = None,
        type_targets: torch.Tensor | None = None,
        task: str = "tvp",
        ignore_index: int = -100,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of the task's decoder; with targets, its loss plus the sharing penalty.

        `task` "ttp" runs the type decoder against `type_targets`; "tvp" and "sc" run the
        name decoder against `name_targets` (for "sc" the caller masks them to statement
        continuations). Only the decoder the task needs is run.
        """
        if task == "ttp":
            if self.type_decoder is None:
                raise ValueError("a names_only model has no type task")
            logits, _ = self.type_decoder(names, types)
            targets = type_targets
        else:
            logits, _ = self.name_decoder(names, None if self.config.names_only else types)
            targets = name_targets
        if targets is None:
            return logits, None
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            targets.reshape(-1),
            ignore_index=ignore_index,
        )
        if self.type_decoder is not None and self.config.share_lambda:
            loss = loss + self.config.share_lambda * self.sharing_penalty()
        return logits, loss


class CodeFillStep(nn.Module):
    """One call with the cache stacked: (names, types, past) -> (name logits, type logits,
    present) (the graph of releases before `CodeFillSplitStep`).

    The server exports it with `last_only`: a prompt and each decoding step need the logits
    of the last position alone.
    """

    def __init__(self, model: CodeFill, last_only: bool = False) -> None:
        super().__init__()
        self.model = model
        self.last_only = last_only

    def forward(
        self, names: torch.Tensor, types: torch.Tensor, past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        name_logits, type_logits, present = self.model.step(names, types, past, self.last_only)
        if type_logits is None:
            return name_logits, present
        return name_logits, type_logits, present


class CodeFillSplitStep(CodeFillStep):
    """The exported graph with one cache tensor per layer and kind (the name decoder's
    layers, then the type decoder's): (names, types, k_0, v_0, ...) -> (name logits, type
    logits, k_0', v_0', ...), each (B, H, P, D); see `pycoder.PyCoderSplitStep` for why."""

    def forward(  # type: ignore[override]
        self, names: torch.Tensor, types: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        pairs = paired(past)
        L = self.model.config.n_layer
        name_logits, kv = self.model.name_decoder.layers(names, types, pairs[:L], self.last_only)
        heads = [name_logits]
        if self.model.type_decoder is not None:
            type_logits, type_kv = self.model.type_decoder.layers(
                names, types, pairs[L:], self.last_only
            )
            heads.append(type_logits)
            kv = kv + type_kv
        return (*heads, *flattened(kv))


def save_pretrained(model: CodeFill, folder: Path) -> None:
    """HF-style checkpoint: config.json + model.safetensors (never a pickle)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.config.save(folder / "config.json")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))


def from_pretrained(folder: Path) -> CodeFill:
    """Rebuild a model from its folder alone."""
    from safetensors.torch import load_file

    model = CodeFill(CodeFillConfig.load(folder / "config.json"))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model
