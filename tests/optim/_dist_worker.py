"""Code run by each of the 2 gloo ranks of test_dion_distributed.py (spawned, localhost only).

`run(rank, world, port, out_dir)` runs every scenario and saves `out_dir/rank{rank}.pt`; the test process
computes the one-process references and compares. Scenario inputs come from the functions below, which the
test imports too, so both sides see the same shapes, gradients and models.
"""

from __future__ import annotations

import io
import os

import torch
import torch.distributed as dist
from torch import nn

from reasonrl.optim.dion import Dion
from reasonrl.optim.muon import Muon

WORLD = 2
DP_SHAPES = [(32, 24), (32, 24), (24, 40), (24, 40), (16, 16), (16, 16), (2, 2)]  # (2, 2) at r = 1 is not compressed
DP_STEPS = 6
DP_KW = dict(lr=0.03, mu=0.9, rank_fraction=0.25, weight_decay=0.1, qr_method="rcqr")
FSDP_STEPS = 5


def dp_params() -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    mats = [nn.Parameter(torch.randn(s, generator=gen)) for s in DP_SHAPES]
    return [*mats, nn.Parameter(torch.randn(12, generator=gen))]  # the last one goes to AdamW


def dp_optimizer(params: list[nn.Parameter], process_group=None) -> Dion:
    groups = [{"params": params[:-1]}, {"params": params[-1:], "algorithm": "adamw"}]
    return Dion(groups, **DP_KW, process_group=process_group)


def dp_grads(step: int, rank: int) -> list[torch.Tensor]:
    """Different full-rank gradients on every rank."""
    gen = torch.Generator().manual_seed(1000 * step + rank)
    return [torch.randn(p.shape, generator=gen) for p in dp_params()]


def fsdp_model() -> nn.Module:
    torch.manual_seed(0)
    # 3 output rows on 2 ranks: uneven shards (2 + 1)
    return nn.Sequential(nn.Linear(24, 32, bias=False), nn.Tanh(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3))


def fsdp_batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(500 + 10 * step + rank)
    return torch.randn(8, 24, generator=gen), torch.randn(8, 3, generator=gen)


def fsdp_groups(model: nn.Module) -> list[dict]:
    mats = [p for p in model.parameters() if p.ndim == 2]
    vecs = [p for p in model.parameters() if p.ndim != 2]
    return [{"params": mats}, {"params": vecs, "algorithm": "adamw"}]


def fsdp_dion(model: nn.Module, **kw) -> Dion:
    return Dion(fsdp_groups(model), lr=0.05, mu=0.9, rank_fraction=0.5, weight_decay=0.1, qr_method="rcqr", **kw)


def fsdp_muon(model: nn.Module) -> Muon:
    groups = fsdp_groups(model)
    groups[0]["algorithm"] = "muon"
    return Muon(groups, lr=0.05, weight_decay=0.1, ns_dtype=torch.float32)


def preload() -> None:
    """Import in the parent what the forked ranks need (FSDP2; torch._dynamo, which the first optimizer loads)."""
    import torch.distributed.device_mesh  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401

    dp_optimizer(dp_params())


def _dp(rank: int, out: dict) -> None:
    params = dp_params()
    opt = dp_optimizer(params, dist.group.WORLD)
    traj, bytes_ = [], []
    for step in range(DP_STEPS):
        for p, g in zip(params, dp_grads(step, rank), strict=True):
            p.grad = g
        opt.step()
        traj.append([p.detach().clone() for p in params])
        bytes_.append(opt.last_step_bytes)
        if step == DP_STEPS // 2 - 1:
            moms_before = [opt.state[p]["momentum"].clone() for p in params[:-1]]
            opt.synchronize_for_checkpoint()
            out["moms_before_sync"] = moms_before
            out["moms_after_sync"] = [opt.state[p]["momentum"].clone() for p in params[:-1]]
            buf = io.BytesIO()
            torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
            checkpoint = buf.getvalue()
    out["dp_traj"], out["dp_bytes"] = traj, bytes_
    # resume: fresh parameters and optimizer from the checkpoint, then the same remaining steps
    ckpt = torch.load(io.BytesIO(checkpoint), weights_only=False)
    params = [nn.Parameter(t) for t in ckpt["params"]]
    opt = dp_optimizer(params, dist.group.WORLD)
    opt.load_state_dict(ckpt["opt"])
    for step in range(DP_STEPS // 2, DP_STEPS):
        for p, g in zip(params, dp_grads(step, rank), strict=True):
            p.grad = g
        opt.step()
    out["dp_resumed"] = [p.detach().clone() for p in params]


def _fsdp(rank: int, make_opt) -> list[list[torch.Tensor]]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (WORLD,))
    model = fsdp_model()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = make_opt(model)
    traj = []
    for step in range(FSDP_STEPS):
        x, y = fsdp_batch(step, rank)
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        traj.append([p.full_tensor().detach().clone() for p in model.parameters()])
    return traj


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out: dict = {}
    try:
        _dp(rank, out)
        out["fsdp_dion"] = _fsdp(rank, fsdp_dion)
        out["fsdp_muon"] = _fsdp(rank, fsdp_muon)
    finally:
        dist.destroy_process_group()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
