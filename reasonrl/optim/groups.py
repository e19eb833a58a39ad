"""Which parameters Muon / Dion update, and the element-wise AdamW / Lion updates for the rest.

Grouping rule (Muon README, Jordan 2024; Dion README, arXiv 2504.05295): only the 2-D
hidden weight matrices of the transformer blocks are orthonormalised. Embeddings and the output head are
matrices too, but their rows are per-token vectors, so a shape test cannot tell them apart from hidden
weights; they are recognised by module type and name instead. Every parameter gets exactly one role:

    "matrix"     weight of an nn.Linear with min(rows, cols) >= 2 that is not the output head -> Muon / Dion
    "embedding"  parameter of an nn.Embedding (also when the LM head is tied to it)             -> AdamW
    "head"       the output head (module named `lm_head`, or `get_output_embeddings()` of a Hugging Face
                 model) and degenerate linear weights with one row or column (a value head)     -> AdamW
    "vector"     everything else: norms, biases, gains, other 1-D / 3-D+ parameters            -> AdamW

Weight decay (a convention of this package, the same for all three optimizers): 2-D parameters (matrix,
embedding, head) are decayed, "vector" parameters are not.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

Role = Literal["matrix", "embedding", "head", "vector"]
ROLES: tuple[Role, ...] = ("matrix", "embedding", "head", "vector")


def _output_head_ids(model: nn.Module) -> set[int]:
    ids = {id(p) for name, mod in model.named_modules() if name.split(".")[-1] == "lm_head" for p in mod.parameters()}
    try:
        from transformers import PreTrainedModel
    except ImportError:  # transformers is a dependency, but the rule itself must not need it
        return ids
    if isinstance(model, PreTrainedModel) and model.get_output_embeddings() is not None:
        ids |= {id(p) for p in model.get_output_embeddings().parameters()}
    return ids


def split_param_groups(model: nn.Module) -> dict[Role, list[tuple[str, nn.Parameter]]]:
    """Assign every trainable parameter of `model` one role (see the module docstring); tied weights once.

    Returns {role: [(name, parameter), ...]} in `named_parameters()` order, with all four roles present.
    """
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    head_ids = _output_head_ids(model)
    linear_weight_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    out: dict[Role, list[tuple[str, nn.Parameter]]] = {role: [] for role in ROLES}
    for name, p in model.named_parameters():  # yields a tied parameter once
        if not p.requires_grad:
            continue
        if id(p) in embedding_ids:
            role: Role = "embedding"
        elif id(p) in head_ids:
            role = "head"
        elif p.ndim == 2 and id(p) in linear_weight_ids:
            role = "matrix" if min(p.shape) >= 2 else "head"
        else:
            role = "vector"
        out[role].append((name, p))
    return out


def adamw_update(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """AdamW (Loshchilov & Hutter, arXiv 1711.05101, Alg. 2) in place, the same arithmetic as torch.optim.AdamW.

    x *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    x -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps),   t = `step` (1 on the first update).
    """
    param.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias1 = 1 - beta1**step
    bias2 = 1 - beta2**step
    denom = (exp_avg_sq.sqrt() / math.sqrt(bias2)).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias1)


def lion_update(
    param: Tensor, grad: Tensor, exp_avg: Tensor, *, lr: float, beta1: float, beta2: float, weight_decay: float
) -> None:
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv 2302.06675) in place.

    u = sign(b1 m + (1 - b1) g);  x *= 1 - lr wd;  x -= lr u;  m = b2 m + (1 - b2) g.
    """
    update = exp_avg.lerp(grad, 1 - beta1).sign_()
    param.mul_(1 - lr * weight_decay)
    param.add_(update, alpha=-lr)
    exp_avg.lerp_(grad, 1 - beta2)


def scalar_step(param: Tensor, grad: Tensor, state: dict, group: dict) -> None:
    """One AdamW or Lion step (`group["algorithm"]`) on a parameter, creating its state on first use."""
    if group["algorithm"] == "adamw":
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        adamw_update(
            param, grad, state["exp_avg"], state["exp_avg_sq"], step=state["step"], lr=group["lr"],
            beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
        )  # fmt: skip
    elif group["algorithm"] == "lion":
        if not state:
            state["exp_avg"] = torch.zeros_like(param)
        beta1, beta2 = group["betas"]
        lion_update(
            param, grad, state["exp_avg"], lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"]
        )
    else:
        raise AssertionError(f"unknown scalar algorithm {group['algorithm']!r}")


def check_group_keys(optimizer: str, param_group: dict, known: set[str]) -> None:
    """A param group for `optimizer` ("Muon", "Dion") may only set keys it knows (before defaults are filled)."""
    unknown = set(param_group) - known
    if unknown:
        raise ValueError(f"{optimizer}: unknown param-group keys {sorted(unknown)} (known: {sorted(known)})")


def check_group_algorithm(optimizer: str, group: dict, matrix_algorithm: str) -> None:
    """A filled param group runs `matrix_algorithm` (2-D parameters only), "adamw" or "lion"."""
    algorithm = group["algorithm"]
    if algorithm not in (matrix_algorithm, "adamw", "lion"):
        raise ValueError(f"{optimizer}: algorithm must be {matrix_algorithm}, adamw or lion, got {algorithm!r}")
    if algorithm == matrix_algorithm:
        for p in group["params"]:
            if p.ndim != 2:
                raise ValueError(f"{optimizer}: algorithm {matrix_algorithm!r} needs 2-D parameters, "
                                 f"got shape {tuple(p.shape)}")
