"""Build the optimizer a trainer asks for in `[optim]`: one object for every parameter of the model.

`optim.name` picks the algorithm for the hidden matrices ("adamw" | "muon" | "dion"); embeddings, the LM head,
norms and biases always use AdamW (rule in `reasonrl.optim.groups`). Each group carries its own `lr`, so
`torch.optim.lr_scheduler.LambdaLR` scales matrix and AdamW groups by the same factor.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed import ProcessGroup

from reasonrl.config import OptimConfig
from reasonrl.errors import UserError
from reasonrl.optim.dion import Dion
from reasonrl.optim.groups import split_param_groups
from reasonrl.optim.muon import Muon

STATE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _check(cfg: OptimConfig) -> None:
    if cfg.lr <= 0:
        raise UserError(f"optim.lr must be > 0, got {cfg.lr}")
    if cfg.scalar_lr < 0:
        raise UserError(f"optim.scalar_lr must be >= 0 (0 means optim.lr), got {cfg.scalar_lr}")
    if cfg.weight_decay < 0:
        raise UserError(f"optim.weight_decay must be >= 0, got {cfg.weight_decay}")
    if len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas):
        raise UserError(f"optim.betas must be two numbers in [0, 1), got {cfg.betas}")
    if not 0 <= cfg.mu < 1:
        raise UserError(f"optim.mu must be in [0, 1), got {cfg.mu}")
    if not 0 < cfg.rank_fraction <= 1:
        raise UserError(f"optim.rank_fraction must be in (0, 1], got {cfg.rank_fraction}")
    if cfg.rank_multiple < 1:
        raise UserError(f"optim.rank_multiple must be >= 1, got {cfg.rank_multiple}")
    if cfg.ns_steps < 1:
        raise UserError(f"optim.ns_steps must be >= 1, got {cfg.ns_steps}")


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, *, process_group: ProcessGroup | None = None
) -> torch.optim.Optimizer:
    """One optimizer for all trainable parameters of `model`, configured by `cfg` (`[optim]`).

    "adamw": torch.optim.AdamW, weight decay on 2-D parameters only. "muon" / "dion": `Muon` / `Dion` with the
    hidden matrices in one group and AdamW groups (lr = `scalar_lr` or `lr`) for the rest. `process_group`
    (Dion only) turns on Dion's data-parallel mode: the trainer must then not all-reduce gradients at all
    (see `Dion`). FSDP2 needs no argument: call this after `fully_shard`, Dion detects the DTensors.
    """
    _check(cfg)
    if process_group is not None and cfg.name != "dion":
        raise AssertionError("process_group is only used by Dion's data-parallel mode")
    split = split_param_groups(model)
    matrix = [p for _, p in split["matrix"]]
    decayed = [p for role in ("embedding", "head") for _, p in split[role]]
    vector = [p for _, p in split["vector"]]
    betas = (cfg.betas[0], cfg.betas[1])
    if cfg.name == "adamw":
        groups: list[dict[str, Any]] = [
            {"params": matrix + decayed, "weight_decay": cfg.weight_decay},
            {"params": vector, "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    scalar_lr = cfg.scalar_lr or cfg.lr
    groups = [
        {"params": matrix, "algorithm": cfg.name},
        {"params": decayed, "algorithm": "adamw", "lr": scalar_lr, "weight_decay": cfg.weight_decay},
        {"params": vector, "algorithm": "adamw", "lr": scalar_lr, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    state_dtype = STATE_DTYPES[cfg.state_dtype]
    if cfg.name == "muon":
        return Muon(
            groups, lr=cfg.lr, mu=cfg.mu, nesterov=cfg.nesterov, ns_steps=cfg.ns_steps,
            weight_decay=cfg.weight_decay, betas=betas, eps=cfg.eps, state_dtype=state_dtype,
        )  # fmt: skip
    assert cfg.name == "dion", f"unknown optim.name {cfg.name!r}"
    return Dion(
        groups, lr=cfg.lr, mu=cfg.mu, rank_fraction=cfg.rank_fraction, rank_multiple=cfg.rank_multiple,
        weight_decay=cfg.weight_decay, eps=cfg.eps, qr_method=cfg.qr_method, betas=betas, state_dtype=state_dtype,
        process_group=process_group,
    )  # fmt: skip
