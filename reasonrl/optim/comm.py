"""Collectives used by the distributed optimizers, and the communication-volume model.

This module and `reasonrl/dist.py` are the only torch.distributed importers. Every collective helper returns
the bytes one rank sends under the ring model, so an optimizer can report what a step costs:

    all-reduce of N bytes            2 N (W - 1) / W
    reduce-scatter of N input bytes    N (W - 1) / W
    all-gather of N output bytes       N (W - 1) / W

(W = world size; a group of one process sends nothing.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed import ProcessGroup


def world_size(group: ProcessGroup | None) -> int:
    """Number of ranks in `group`; 1 when there is no group."""
    return 1 if group is None else dist.get_world_size(group)


def _ring(num_bytes: int, world: int, *, factor: int) -> int:
    return factor * num_bytes * (world - 1) // world


def all_reduce_(t: Tensor, group: ProcessGroup | None, *, mean: bool) -> int:
    """Sum (or average) `t` in place over `group`; returns the ring bytes sent. Gloo has no AVG op, so divide."""
    world = world_size(group)
    if world == 1:
        return 0
    dist.all_reduce(t, group=group)
    if mean:
        t.div_(world)
    return _ring(t.numel() * t.element_size(), world, factor=2)


def all_reduce_list_(tensors: Sequence[Tensor], group: ProcessGroup | None, *, mean: bool) -> int:
    """Sum or average a list of tensors in place with one flat fp32 all-reduce (one message, not one each)."""
    if world_size(group) == 1 or not tensors:
        return 0
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    sent = all_reduce_(flat, group, mean=mean)
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
        t.copy_(part.view_as(t))
    return sent


def reduce_apply_gather(
    mats: Sequence[Tensor], fns: Sequence[Callable[[Tensor], Tensor]], group: ProcessGroup | None, *, mean: bool
) -> tuple[list[Tensor], int]:
    """Reduce each matrix over ranks (sum or mean), apply its function once, give every rank every result.

    Matrices go in batches of W of the same shape: a reduce-scatter hands rank j the reduced j-th matrix of
    the batch, rank j applies that matrix's function (the shape must not change), and an all-gather returns
    the W results to every rank, so the expensive functions (Dion's orthonormalisation) are split over ranks.
    A short last batch is padded with zeros that no function sees. All ranks must pass the same shapes in
    the same order. Returns (fp32 results in input order, ring bytes sent).
    """
    world = world_size(group)
    if world == 1:
        return [fn(m).float() for m, fn in zip(mats, fns, strict=True)], 0
    rank = dist.get_rank(group)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, m in enumerate(mats):
        by_shape.setdefault(tuple(m.shape), []).append(i)
    out: list[Tensor | None] = [None] * len(mats)
    sent = 0
    for shape, idx in by_shape.items():
        for start in range(0, len(idx), world):
            chunk = idx[start : start + world]
            stacked = torch.zeros((world, *shape), dtype=torch.float32, device=mats[chunk[0]].device)
            for j, i in enumerate(chunk):
                stacked[j].copy_(mats[i])
            mine = torch.empty(shape, dtype=torch.float32, device=stacked.device)
            # flat views: gloo wants the input's dim 0 to be W times the output's
            dist.reduce_scatter_tensor(mine.view(-1), stacked.view(-1), group=group)
            sent += _ring(stacked.numel() * stacked.element_size(), world, factor=1)
            if mean:
                mine.div_(world)
            result = fns[chunk[rank]](mine).float() if rank < len(chunk) else torch.zeros_like(mine)
            gathered = torch.empty_like(stacked)
            dist.all_gather_into_tensor(gathered.view(-1), result.contiguous().view(-1), group=group)
            sent += _ring(gathered.numel() * gathered.element_size(), world, factor=1)
            for j, i in enumerate(chunk):
                out[i] = gathered[j]
    return out, sent  # type: ignore[return-value]


def is_dtensor(t: Tensor) -> bool:
    """Whether `t` is a DTensor. torch.distributed.tensor takes a second to import, so it is only looked up
    when something else (FSDP2) has imported it; before that no DTensor can exist."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(t, module.DTensor)


def local(t: Tensor) -> Tensor:
    """The local shard of a DTensor (sharing storage), or the tensor itself."""
    return t.to_local() if is_dtensor(t) else t


def dim0_sharded_group(p: Tensor) -> ProcessGroup:
    """The process group of a DTensor sharded on dim 0 over a 1-D mesh (the FSDP2 `fully_shard` layout)."""
    from torch.distributed.tensor import Shard

    assert is_dtensor(p), "expected a DTensor"
    mesh = p.device_mesh
    assert mesh.ndim == 1 and tuple(p.placements) == (Shard(0),), (
        f"only 1-D meshes with Shard(0) placement (FSDP2 fully_shard) are supported, got {p.placements} on {mesh}"
    )
    return mesh.get_group()


def shard_like(full: Tensor, p: Tensor) -> Tensor:
    """Shard a tensor that every rank holds in full the way DTensor `p` is sharded (no communication)."""
    from torch.distributed.tensor import distribute_tensor

    assert is_dtensor(p), "expected a DTensor"
    return distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None)


def gather_like(local_part: Tensor, p: Tensor) -> Tensor:
    """All-gather a tensor sharded like DTensor `p` (given as this rank's part) into the full tensor on every
    rank; for a plain `p`, return `local_part` unchanged."""
    if not is_dtensor(p):
        return local_part
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(
        local_part, p.device_mesh, p.placements, shape=p.shape, stride=p.stride(), run_check=False
    ).full_tensor()


def local_rows_like(full: Tensor, p: Tensor) -> Tensor:
    """This rank's part of a full tensor, sharded like DTensor `p`; for a plain `p`, `full` itself."""
    return shard_like(full, p).to_local() if is_dtensor(p) else full


def clip_grad_norm_(params: Sequence[Tensor], max_norm: float, *, process_group: ProcessGroup | None = None) -> Tensor:
    """Clip local gradients by the norm of their average over ranks, the norm one process holding the whole
    batch would clip by; every rank scales by the same factor.

    For Dion's data-parallel mode (gradients stay local until the optimizer step). The norm of the average
    is not a function of the local norms (it depends on how the ranks' gradients align; sqrt(mean of local
    squared norms) overstates it), so the gradients are averaged once into a flat fp32 copy for the norm:
    one full all-reduce per clipped step, the volume Dion's mode otherwise saves; `train.max_grad_norm = 0`
    skips it. Without a group this equals `torch.nn.utils.clip_grad_norm_`. Returns the norm before clipping.
    """
    grads = [local(p.grad) for p in params if p.grad is not None]
    device = grads[0].device if grads else torch.device("cpu")
    flat = torch.cat([g.reshape(-1).float() for g in grads]) if grads else torch.zeros(1, device=device)
    all_reduce_(flat, process_group, mean=True)
    norm = flat.norm()
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype))
    return norm


def world_group() -> ProcessGroup | None:
    """The default process group when torch.distributed is initialised, else None (for `Dion(process_group=)`)."""
    return dist.group.WORLD if dist.is_available() and dist.is_initialized() else None
