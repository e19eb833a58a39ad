"""Muon: Newton-Schulz on singular values, hand values on 2x2 cases, agreement with torch.optim.Muon."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reasonrl.optim.muon import NS_COEFFICIENTS, Muon, muon_scale, muon_update, newton_schulz5


def _ns_scalar(s: float, steps: int = 5) -> float:
    """NS5 acts on each normalised singular value by s -> a s + b s^3 + c s^5."""
    a, b, c = NS_COEFFICIENTS
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return s


def test_scalar_map_hand_values():
    # sigma / ||G||_F of diag(3, 1) is (3, 1) / sqrt(10) = (0.948683, 0.316228); five steps of the quintic:
    # 0.948683 -> 0.751846 -> 1.048416 -> 0.681856 -> 1.134332 -> 0.753033
    # 0.316228 -> 0.944672 -> 0.756801 -> 1.041391 -> 0.682469 -> 1.133706
    assert _ns_scalar(3 / math.sqrt(10)) == pytest.approx(0.753033, abs=1e-6)
    assert _ns_scalar(1 / math.sqrt(10)) == pytest.approx(1.133706, abs=1e-6)


def test_newton_schulz_equals_polynomial_of_singular_values():
    gen = torch.Generator().manual_seed(0)
    for shape in [(48, 32), (32, 48)]:
        G = torch.randn(shape, generator=gen)
        U, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
        expect = U @ torch.diag(torch.tensor([_ns_scalar(float(s)) for s in S / S.norm()])).double() @ Vh
        got = newton_schulz5(G, dtype=torch.float32)
        torch.testing.assert_close(got.double(), expect, atol=2e-5, rtol=0)


def test_newton_schulz_singular_value_band():
    # the coefficients send every normalised singular value in [0.01, 1] into [0.6818, 1.1344] in 5 steps
    gen = torch.Generator().manual_seed(1)
    for shape in [(64, 32), (32, 96), (48, 48)]:
        k = min(shape)
        U = torch.linalg.qr(torch.randn(shape[0], k, generator=gen)).Q
        V = torch.linalg.qr(torch.randn(shape[1], k, generator=gen)).Q
        sigma = torch.logspace(0, 1.5, k)  # condition number 31.6
        assert sigma.min() / sigma.norm() > 0.01  # inside the band's domain
        G = U @ torch.diag(sigma) @ V.T
        s32 = torch.linalg.svdvals(newton_schulz5(G, dtype=torch.float32).double())
        assert s32.min() > 0.6818 - 1e-4 and s32.max() < 1.1344 + 1e-4
        assert (s32 - 1).abs().max() > 0.05  # by design not exactly orthogonal
        s16 = torch.linalg.svdvals(newton_schulz5(G, dtype=torch.bfloat16).double())  # the band widens by rounding
        assert s16.min() > 0.6 and s16.max() < 1.2
        assert newton_schulz5(G).dtype == torch.float32  # default on the CPU


def test_scale_hand_values():
    assert muon_scale(4, 2) == pytest.approx(math.sqrt(2))  # sqrt(max(1, 4/2))
    assert muon_scale(2, 4) == 1.0  # wide: max(1, 1/2) = 1
    assert muon_scale(2, 8, adjust_lr="spectral") == pytest.approx(0.5)  # sqrt(2/8)
    assert muon_scale(16, 64, adjust_lr="rms") == pytest.approx(1.6)  # 0.2 * sqrt(64)


def test_optimizer_hand_values_2x2():
    # step 1: G1 = diag(3, 1), M1 = 0.05 G1, Nesterov U1 = 0.05 G1 + 0.95 M1 = diag(0.2925, 0.0975);
    # NS5(U1) = diag(0.753033, 1.133706) (see test_scalar_map_hand_values); scale 1 (square)
    # X1 = (1 - 0.1 * 0.5) I - 0.1 * diag(0.753033, 1.133706) = diag(0.874697, 0.836629)
    X = nn.Parameter(torch.eye(2))
    opt = Muon([X], lr=0.1, weight_decay=0.5, ns_dtype=torch.float32)
    X.grad = torch.diag(torch.tensor([3.0, 1.0]))
    opt.step()
    torch.testing.assert_close(X.detach(), torch.diag(torch.tensor([0.874697, 0.836629])), atol=2e-6, rtol=0)
    # step 2: G2 = diag(1, 3): M2 = 0.95 M1 + 0.05 G2 = diag(0.1425 + 0.05, 0.0475 + 0.15) = diag(0.1925, 0.1975)
    X.grad = torch.diag(torch.tensor([1.0, 3.0]))
    opt.step()
    torch.testing.assert_close(opt.state[X]["momentum"], torch.diag(torch.tensor([0.1925, 0.1975])))


def test_rotated_and_tall_hand_values():
    # G = R(0.3) diag(3, 1) R(-0.7)^T: NS acts on the singular values only -> R(0.3) diag(0.753033, 1.133706) ...
    def rot(t):
        return torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])

    U, V = rot(0.3), rot(-0.7)
    G = U @ torch.diag(torch.tensor([3.0, 1.0])) @ V.T
    X, M = torch.zeros(2, 2), torch.zeros(2, 2)
    muon_update(X, G, M, lr=1.0, ns_dtype=torch.float32)
    torch.testing.assert_close(X, -(U @ torch.diag(torch.tensor([0.753033, 1.133706])) @ V.T), atol=2e-6, rtol=0)
    # tall 4 x 2 with orthonormal columns: normalised singular values 1/sqrt(2) -> p^5(0.707107), scale sqrt(2)
    G = torch.zeros(4, 2)
    G[0, 0] = G[1, 1] = 1.0
    X = torch.zeros(4, 2)
    muon_update(X, G, torch.zeros(4, 2), lr=0.1, ns_dtype=torch.float32, nesterov=False)
    torch.testing.assert_close(X, -0.1 * math.sqrt(2) * _ns_scalar(1 / math.sqrt(2)) * G, atol=2e-6, rtol=0)


def _compare_with_torch(nesterov: bool, ns_dtype: torch.dtype = torch.bfloat16) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(64, 32), (48, 48), (32, 64)]
    ours = [nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    start = [p.detach().clone() for p in ours]
    opt_ours = Muon(ours, lr=0.02, weight_decay=0.1, nesterov=nesterov, ns_dtype=ns_dtype)
    opt_theirs = torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1)
    for _ in range(10):
        for a, b in zip(ours, theirs, strict=True):
            g = torch.randn(a.shape, generator=gen)
            a.grad, b.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_theirs.step()
    diff = max(float((a - b).detach().abs().max()) for a, b in zip(ours, theirs, strict=True))
    moved = max(float((a - s).detach().abs().max()) for a, s in zip(ours, start, strict=True))
    return diff, moved


def test_matches_torch_muon():
    diff, moved = _compare_with_torch(nesterov=True)
    assert diff < 0.05 * moved  # both bf16 NS; only rounding order differs
    diff32, _ = _compare_with_torch(nesterov=True, ns_dtype=torch.float32)
    assert diff32 < 0.05 * moved  # fp32 NS (our CPU default) vs torch's bf16: the same algorithm
    wrong, _ = _compare_with_torch(nesterov=False)
    assert wrong > 0.1 * moved  # a different algorithm is far outside that tolerance


def test_adamw_group_and_validation():
    gen = torch.Generator().manual_seed(0)
    a = nn.Parameter(torch.randn(6, generator=gen))
    b = nn.Parameter(a.detach().clone())
    ours = Muon([{"params": [a], "algorithm": "adamw"}], lr=0.01, weight_decay=0.1, eps=1e-8)
    theirs = torch.optim.AdamW([b], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for _ in range(4):
        g = torch.randn(6, generator=gen)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    torch.testing.assert_close(a.detach(), b.detach(), atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="2-D"):
        Muon([nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="unknown param-group keys"):
        Muon([{"params": [nn.Parameter(torch.zeros(3, 3))], "momentum": 0.9}])
