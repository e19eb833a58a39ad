"""Learning-rate schedule: linear warmup, then cosine decay to a floor (or constant)."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based).

    Warmup: (step + 1) / warmup_steps. Cosine: min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * progress)),
    progress going from 0 after warmup to 1 at the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps - 1)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(s, total_steps=total_steps, warmup_steps=optim_cfg.warmup_steps,
                            schedule=optim_cfg.schedule, min_ratio=optim_cfg.min_lr_ratio),
    )
