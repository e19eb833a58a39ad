"""Gradient utilities shared by every trainer."""

from __future__ import annotations

import torch


def clip_grad(model: torch.nn.Module, max_norm: float) -> float:
    """Clip the global gradient L2 norm to `max_norm` (0: measure only); returns the norm before clipping."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.nn.utils.get_total_norm([p.grad for p in params]))


def clip_grad_synced(model: torch.nn.Module, max_norm: float, *, local_grads: bool) -> float:
    """`clip_grad`, or with `local_grads` (Dion's data-parallel mode: no DDP all-reduce, each rank holds its
    own gradient) one norm over the averaged gradients of all ranks, so every rank clips by the same factor."""
    if not local_grads:
        return clip_grad(model, max_norm)
    if max_norm <= 0:
        return 0.0
    from reasonrl.optim import comm

    return float(comm.clip_grad_norm_(list(model.parameters()), max_norm, process_group=comm.world_group()))
