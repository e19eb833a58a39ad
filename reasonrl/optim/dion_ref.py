"""Slow, obviously-correct Dion twin: float64, Householder QR, one matrix, no in-place tricks, no communication.

Tests compare `reasonrl.optim.dion` against this line by line; it follows arXiv 2504.05295 v3, Algorithm 1
(see the module docstring of `dion.py` for the formulas), with the same orientation argument.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def dion_reference_step(
    X: Tensor,
    G: Tensor,
    M: Tensor,
    Q: Tensor,
    *,
    lr: float,
    mu: float,
    weight_decay: float,
    eps: float,
    transposed: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """One Dion step; returns new (X, M, Q) as float64 tensors and leaves the inputs untouched."""
    X, G, M, Q = (t.detach().double() for t in (X, G, M, Q))
    m, n = X.shape
    B = M + G
    A = B.T if transposed else B
    if not torch.any(A @ Q != 0):  # nothing to orthonormalise: weight decay only, Q kept
        return X * (1 - lr * weight_decay), B, Q
    P = torch.linalg.qr(A @ Q).Q  # (long, r) orthonormal columns
    R = A.T @ P  # (short, r)
    A_new = A - (1 - mu) * (P @ R.T)
    Q_new = R / (R.norm(dim=0) + eps)
    update = P @ Q_new.T
    M_new = A_new.T if transposed else A_new
    delta = update.T if transposed else update
    X_new = X * (1 - lr * weight_decay) - lr * math.sqrt(m / n) * delta
    return X_new, M_new, Q_new
