"""Muon: momentum orthogonalised by a quintic Newton-Schulz iteration (Keller Jordan, "Muon: An optimizer for
hidden layers in neural networks", 2024, https://kellerjordan.github.io/posts/muon/).

    M = mu M + (1 - mu) G                       EMA momentum
    U = mu M + (1 - mu) G  (Nesterov)  or  M
    O = NS5(U) ~ U' S' V'^T with S'_ii in about [0.68, 1.13]   (U = U' S V'^T)
    X = (1 - lr wd) X - lr * scale(m, n) * O

NS5: X0 = U / (||U||_F + eps) (so every singular value is <= 1), then `steps` times
X = a X + (b A + c A^2) X with A = X X^T, (a, b, c) = (3.4445, -4.7750, 2.0315), on the wide orientation.
On singular values this is the scalar map s -> a s + b s^3 + c s^5, chosen for a steep slope at 0; five steps
send every s in [0.01, 1] into [0.68, 1.134] (exact arithmetic) rather than to 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor

from reasonrl.optim import comm
from reasonrl.optim.groups import check_group_algorithm, check_group_keys, scalar_step

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
AdjustLR = Literal["original", "spectral", "rms"]


def newton_schulz5(
    G: Tensor,
    *,
    steps: int = 5,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Approximate orthogonalisation of a matrix by the quintic Newton-Schulz iteration (Jordan 2024), in `dtype`.

    Runs on the wide orientation (rows <= cols) so X X^T is the small Gram matrix; returns `dtype`, G's shape.
    `dtype` None: bf16 on CUDA (Jordan's choice), fp32 elsewhere (CPUs without bf16 matrix units emulate bf16
    matmuls, 100x slower than fp32 here).
    """
    a, b, c = coefficients
    dtype = dtype or ns_default_dtype(G.device)
    with torch.autocast(G.device.type, enabled=False):
        X = G.to(dtype)
        tall = X.size(0) > X.size(1)
        if tall:
            X = X.T
        X = X / (X.norm() + eps)
        for _ in range(steps):
            A = X @ X.T
            X = a * X + (b * A + c * (A @ A)) @ X
        return X.T if tall else X


def ns_default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def muon_scale(m: int, n: int, *, adjust_lr: AdjustLR = "original") -> float:
    """Shape-dependent step multiplier for an m x n (fan_out x fan_in) matrix.

    "original": sqrt(max(1, m / n)) (Jordan's Muon and torch.optim.Muon); "spectral": sqrt(m / n), Dion's scale
    (arXiv 2504.05295 v3, Alg. 1); "rms": 0.2 sqrt(max(m, n)), matching AdamW's update RMS (Moonlight,
    arXiv 2502.16982).
    """
    if adjust_lr == "original":
        return math.sqrt(max(1.0, m / n))
    if adjust_lr == "spectral":
        return math.sqrt(m / n)
    assert adjust_lr == "rms", f"unknown adjust_lr {adjust_lr!r}"
    return 0.2 * math.sqrt(max(m, n))


def muon_momentum(grad: Tensor, momentum: Tensor, *, mu: float, nesterov: bool) -> Tensor:
    """M = lerp(M, G, 1 - mu) in place; returns the NS input: lerp(G, M, mu) with Nesterov, else M (a copy)."""
    momentum.lerp_(grad.to(momentum.dtype), 1 - mu)
    return grad.to(momentum.dtype).lerp(momentum, mu) if nesterov else momentum.clone()


def muon_apply(param: Tensor, ortho: Tensor, *, lr: float, weight_decay: float, scale: float) -> None:
    """X = (1 - lr wd) X - lr scale O in place (decoupled weight decay with the unscaled lr, as Jordan's code)."""
    param.mul_(1 - lr * weight_decay)
    param.add_(ortho.to(param.dtype), alpha=-lr * scale)


def muon_update(
    param: Tensor,
    grad: Tensor,
    momentum: Tensor,
    *,
    lr: float,
    mu: float = 0.95,
    nesterov: bool = True,
    weight_decay: float = 0.0,
    ns_steps: int = 5,
    ns_dtype: torch.dtype | None = None,
    adjust_lr: AdjustLR = "original",
) -> dict[str, float]:
    """One-device Muon step on one matrix, in place on param and momentum. Returns stats (update RMS)."""
    ortho = newton_schulz5(muon_momentum(grad, momentum, mu=mu, nesterov=nesterov), steps=ns_steps, dtype=ns_dtype)
    muon_apply(param, ortho, lr=lr, weight_decay=weight_decay, scale=muon_scale(*param.shape, adjust_lr=adjust_lr))
    return {"update_rms": float(ortho.float().pow(2).mean().sqrt())}


_GROUP_KEYS = {"params", "algorithm", "lr", "mu", "nesterov", "ns_steps", "weight_decay", "eps", "betas", "adjust_lr"}


class Muon(torch.optim.Optimizer):
    """Holds Muon state; groups with `algorithm` "muon" (default, 2-D) or "adamw" / "lion" (anything else).

    Defaults follow Jordan's `MuonWithAuxAdam`: lr 0.02, mu 0.95, Nesterov, 5 NS steps (bf16 on CUDA, fp32 on
    CPU unless `ns_dtype` says otherwise), no weight decay, AdamW betas (0.9, 0.95) and eps 1e-10.
    Data parallel: the trainer all-reduces gradients as usual (DDP). FSDP2 (DTensor, Shard(0)): momentum stays
    sharded, the NS input is all-gathered, and every rank orthogonalises the full matrix and keeps its rows.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        *,
        lr: float = 0.02,
        mu: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        weight_decay: float = 0.0,
        adjust_lr: AdjustLR = "original",
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-10,
        ns_dtype: torch.dtype | None = None,
        state_dtype: torch.dtype = torch.float32,
    ) -> None:
        assert state_dtype in (torch.float32, torch.bfloat16), f"state_dtype must be fp32 or bf16, got {state_dtype}"
        defaults = dict(
            algorithm="muon", lr=lr, mu=mu, nesterov=nesterov, ns_steps=ns_steps, weight_decay=weight_decay,
            eps=eps, betas=tuple(betas), adjust_lr=adjust_lr,
        )  # fmt: skip
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype
        self.state_dtype = state_dtype

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        check_group_keys("Muon", param_group, _GROUP_KEYS)
        super().add_param_group(param_group)
        check_group_algorithm("Muon", self.param_groups[-1], "muon")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if group["algorithm"] != "muon":
                    scalar_step(comm.local(p), comm.local(p.grad), state, group)
                    continue
                if not state:
                    state["momentum"] = torch.zeros_like(p, dtype=self.state_dtype)
                mom = muon_momentum(
                    comm.local(p.grad), comm.local(state["momentum"]), mu=group["mu"], nesterov=group["nesterov"]
                )
                ortho = newton_schulz5(comm.gather_like(mom, p), steps=group["ns_steps"], dtype=self.ns_dtype)
                scale = muon_scale(*p.shape, adjust_lr=group["adjust_lr"])
                muon_apply(
                    comm.local(p), comm.local_rows_like(ortho, p), lr=group["lr"],
                    weight_decay=group["weight_decay"], scale=scale,
                )  # fmt: skip
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch's, but momentum keeps `state_dtype` (torch casts loaded state to the parameter dtype)."""
        super().load_state_dict(state_dict)
        for s in self.state.values():
            if "momentum" in s:
                s["momentum"] = s["momentum"].to(self.state_dtype)
