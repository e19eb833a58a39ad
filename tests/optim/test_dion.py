"""Dion on one process: hand values, the algebraic invariants, the reference twin, precision, resume."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from reasonrl.optim.dion import (
    Dion,
    data_parallel_comm_bytes,
    dion_finish,
    dion_orthonormalize,
    dion_project,
    dion_rank,
    dion_transposed,
    dion_update,
    init_q,
    orthonormalize,
)
from reasonrl.optim.dion_ref import dion_reference_step


def test_rank_hand_values():
    assert dion_rank(64, 64, rank_fraction=0.25) == 16  # ceil(0.25 * 64)
    assert dion_rank(64, 128, rank_fraction=1 / 16) == 4  # ceil(64 / 16)
    assert dion_rank(30, 50, rank_fraction=0.1) == 3  # 0.1 * 30 = 3.0000000000000004 must not round up to 4
    assert dion_rank(30, 50, rank_fraction=0.1, rank_multiple=8) == 8  # 3 -> next multiple of 8
    assert dion_rank(10, 20, rank_fraction=1.0, rank_multiple=8) == 10  # 10 -> 16, capped at min(m, n)
    assert dion_rank(7, 9, rank_fraction=0.01) == 1  # ceil(0.07)
    assert dion_transposed(16, 48) and not dion_transposed(48, 16) and not dion_transposed(32, 32)


def test_comm_bytes_hand_values():
    # square d x d at fraction f sends (d + d) f d of the d^2 numbers: ratio 2f, no compression once f >= 1/2
    for frac, ratio in [(0.25, 0.5), (1 / 16, 0.125), (0.5, 1.0), (1.0, 1.0)]:
        got = data_parallel_comm_bytes([(64, 64)], rank_fraction=frac, world=2)
        assert got["ratio"] == ratio
        assert got["all_reduce"] == 64 * 64 * 4  # 2 (W - 1) / W = 1 element per element, 4 bytes
    # 4 ranks: ring all-reduce sends 2 * 3 / 4 = 1.5 elements per element; (96, 32) at r = 8: (128 * 8) + 10 scalars
    got = data_parallel_comm_bytes([(96, 32)], rank_fraction=0.25, world=4, num_scalar=10)
    assert got["dion"] == pytest.approx((128 * 8 + 10) * 1.5 * 4)
    assert got["all_reduce"] == pytest.approx((96 * 32 + 10) * 1.5 * 4)


def test_optimizer_hand_values_2x2():
    # X0 = I, M0 = 0, G = diag(3, 1), Q0 = (0.6, 0.8)^T, r = 1, lr 0.1, mu 0.9, wd 0.5, m = n: not transposed.
    # A Q = (1.8, 0.8), |A Q| = sqrt(3.88) = 1.96977  -> P = (0.913812, 0.406138)
    # R = A^T P = (2.741435, 0.406138), |R| = 2.771356 -> Q1 = (0.989203, 0.146549)
    # M1 = B - 0.1 P R^T = [[2.749485, -0.037113], [-0.111340, 0.983505]]
    # X1 = (1 - 0.05) I - 0.1 * sqrt(2/2) * P Q1^T = [[0.859605, -0.013392], [-0.040175, 0.944048]]
    for method in ("qr", "cqr", "rcqr"):
        X = nn.Parameter(torch.eye(2))
        opt = Dion([X], lr=0.1, mu=0.9, rank_fraction=0.5, weight_decay=0.5, qr_method=method, cqr_warmup_steps=0)
        opt.state[X] = {"step": 0, "momentum": torch.zeros(2, 2), "Q": torch.tensor([[0.6], [0.8]])}
        X.grad = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
        opt.step()
        expect_x = torch.tensor([[0.859605, -0.013392], [-0.040175, 0.944048]])
        torch.testing.assert_close(X.detach(), expect_x, atol=2e-6, rtol=0)
        expect_m = torch.tensor([[2.749485, -0.037113], [-0.111340, 0.983505]])
        torch.testing.assert_close(opt.state[X]["momentum"], expect_m, atol=2e-6, rtol=0)
        q = opt.state[X]["Q"]
        torch.testing.assert_close(q * q[0].sign(), torch.tensor([[0.989203], [0.146549]]), atol=2e-6, rtol=0)


def _one_step(shape, frac, method, *, seed=0, mu=0.9, lr=0.05, wd=0.1):
    """Run the three phases by hand on random full-rank M0, G; return everything the invariants need."""
    gen = torch.Generator().manual_seed(seed)
    m, n = shape
    M0, G, X0 = (torch.randn(shape, generator=gen) for _ in range(3))
    t = dion_transposed(m, n)
    r = dion_rank(m, n, rank_fraction=frac)
    Q = init_q(m, n, r, transposed=t, seed=seed)
    momentum, X = M0.clone(), X0.clone()
    P = dion_orthonormalize(dion_project(G, momentum, Q, transposed=t), method=method, seed=1, oversample=1.25)
    dion_finish(X, momentum, Q, P, lr=lr, mu=mu, weight_decay=wd, eps=1e-8, scale=math.sqrt(m / n), transposed=t)
    return dict(B=M0 + G, M=momentum, P=P, Q=Q, X0=X0, X=X, r=r, t=t, mu=mu, lr=lr, wd=wd)


SHAPES = [(48, 20), (20, 48), (32, 32)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("frac", [1.0, 0.25])
@pytest.mark.parametrize("method", ["qr", "cqr", "rcqr"])
def test_one_step_invariants(shape, frac, method):
    s = _one_step(shape, frac, method)
    m, n = shape
    P, Q, r = s["P"], s["Q"], s["r"]
    assert P.shape == (max(m, n), r) and Q.shape == (min(m, n), r)
    torch.testing.assert_close(P.T @ P, torch.eye(r), atol=2e-5, rtol=0)  # orthonormal columns
    torch.testing.assert_close(Q.norm(dim=0), torch.ones(r), atol=1e-5, rtol=0)  # unit columns
    assert float(torch.linalg.matrix_norm(P @ Q.T)) == pytest.approx(math.sqrt(r), rel=1e-5)
    # ||X1 - (1 - lr wd) X0||_F = lr sqrt(m/n) sqrt(r)
    step = s["X"] - (1 - s["lr"] * s["wd"]) * s["X0"]
    assert float(step.norm()) == pytest.approx(s["lr"] * math.sqrt(m / n) * math.sqrt(r), rel=1e-5)
    # the captured subspace decays by mu: P^T A_new = mu P^T A   (A = B or B^T)
    A = s["B"].T if s["t"] else s["B"]
    A_new = s["M"].T if s["t"] else s["M"]
    torch.testing.assert_close(P.T @ A_new, s["mu"] * (P.T @ A), atol=5e-5, rtol=0)
    if frac == 1.0:  # full rank: heavy ball, M1 = mu B
        torch.testing.assert_close(s["M"], s["mu"] * s["B"], atol=5e-5, rtol=0)
    else:  # low rank keeps the residual B - P P^T B undecayed
        assert (s["M"] - s["mu"] * s["B"]).abs().max() > 0.1


@pytest.mark.parametrize("method", ["qr", "cqr", "rcqr"])
def test_zero_gradient_keeps_x_and_q(method):
    X0 = torch.randn(24, 40)
    X = nn.Parameter(X0.clone())
    opt = Dion([X], lr=0.1, weight_decay=0.2, rank_fraction=0.5, qr_method=method, cqr_warmup_steps=0)
    X.grad = torch.zeros_like(X)
    opt.step()
    q0 = init_q(24, 40, 12, transposed=True, seed=0)
    torch.testing.assert_close(X.detach(), (1 - 0.1 * 0.2) * X0, atol=1e-7, rtol=0)  # weight decay only
    torch.testing.assert_close(opt.state[X]["Q"], q0, atol=0, rtol=0)
    assert not opt.state[X]["momentum"].any()
    X.grad = torch.randn(24, 40)  # and the next real step works from the kept Q
    opt.step()
    torch.testing.assert_close(opt.state[X]["Q"].norm(dim=0), torch.ones(12), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["cqr", "rcqr"])
def test_rank_deficient_input_falls_back_to_qr(method):
    # rank-2 P with r = 6: Cholesky of P^T P fails, the Householder QR fallback still gives orthonormal columns
    P = torch.randn(40, 2) @ torch.randn(2, 6)
    out = orthonormalize(P, method=method, seed=0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.T @ out, torch.eye(6), atol=1e-5, rtol=0)


def test_power_iteration_converges_to_top_singular_vectors():
    # lr = 0 and the same B every step (momentum reset): P_k = orth(B B^T P_{k-1}), the subspace power iteration
    gen = torch.Generator().manual_seed(3)
    U = torch.linalg.qr(torch.randn(24, 12, generator=gen)).Q
    V = torch.linalg.qr(torch.randn(12, 12, generator=gen)).Q
    s = torch.tensor([10.0, 8, 6, 4, 2, 1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    B = U @ torch.diag(s) @ V.T
    r = 3
    top = U[:, :r] @ U[:, :r].T
    Q = init_q(24, 12, r, transposed=False, seed=0)
    dist = []
    for _ in range(30):
        P = dion_orthonormalize(dion_project(B, torch.zeros(24, 12), Q, transposed=False), method="rcqr", seed=0,
                                oversample=1.25)  # fmt: skip
        dion_finish(torch.zeros(24, 12), B.clone(), Q, P, lr=0.0, mu=0.9, weight_decay=0.0, eps=1e-8, scale=1.0,
                    transposed=False)  # fmt: skip
        dist.append(float(torch.linalg.matrix_norm(P @ P.T - top, ord=2)))
    assert dist[0] > 0.1  # a random start is far from the top subspace
    assert dist[-1] < 1e-4  # rate (s4 / s3)^2 = 0.44 per step
    assert all(b <= a + 1e-6 for a, b in zip(dist[:20], dist[1:21], strict=True))


def _grads(step: int, shapes):
    gen = torch.Generator().manual_seed(100 + step)
    return [torch.randn(s, generator=gen) for s in shapes]


@pytest.mark.parametrize("frac", [1.0, 0.5, 0.25])
@pytest.mark.parametrize("method", ["qr", "cqr", "rcqr"])
def test_fast_path_matches_reference_twin(frac, method):
    shapes = [(48, 20), (20, 48), (32, 32), (40, 12)]
    kw = dict(lr=0.02, mu=0.95, weight_decay=0.1, eps=1e-8)
    params = [nn.Parameter(torch.randn(s)) for s in shapes]
    opt = Dion(params, rank_fraction=frac, qr_method=method, cqr_warmup_steps=5, seed=7, **kw)
    ref = []
    for i, (p, (m, n)) in enumerate(zip(params, shapes, strict=True)):
        t = dion_transposed(m, n)
        q0 = init_q(m, n, dion_rank(m, n, rank_fraction=frac), transposed=t, seed=7 + i)
        ref.append([p.detach().double(), torch.zeros(m, n, dtype=torch.float64), q0.double(), t])
    for step in range(25):
        for p, g, rs in zip(params, _grads(step, shapes), ref, strict=True):
            p.grad = g
            rs[0], rs[1], rs[2] = dion_reference_step(rs[0], g, rs[1], rs[2], transposed=rs[3], **kw)
        opt.step()
        for p, (x, mom, q, _) in zip(params, ref, strict=True):
            st = opt.state[p]
            torch.testing.assert_close(p.detach().double(), x, atol=2e-5, rtol=0)
            torch.testing.assert_close(st["momentum"].double(), mom, atol=1e-4, rtol=1e-5)
            sign = (st["Q"].double() * q).sum(0).sign()  # methods agree up to column signs
            torch.testing.assert_close(st["Q"].double() * sign, q, atol=1e-4, rtol=0)
    assert (params[0].detach() - ref[0][0]).abs().max() < 2e-5 and ref[0][0].abs().max() > 1


def _run(steps, *, opt_kw=None, autocast=False, start=None):
    """Train two matrices + a vector for `steps` steps; returns (params, optimizer)."""
    gen = torch.Generator().manual_seed(0)
    params = start or [nn.Parameter(torch.randn(s, generator=gen)) for s in [(32, 16), (16, 48), (8,)]]
    groups = [{"params": params[:2]}, {"params": params[2:], "algorithm": "adamw"}]
    opt = Dion(groups, lr=0.02, rank_fraction=0.5, **(opt_kw or {}))
    return params, opt


def _train(params, opt, steps, first=0, autocast=False):
    for step in range(first, first + steps):
        for p, g in zip(params, _grads(step, [p.shape for p in params]), strict=True):
            p.grad = g
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            opt.step()


def test_resume_from_state_dict_equals_uninterrupted():
    params, opt = _run(10)
    _train(params, opt, 10)
    half, opt_half = _run(5)
    _train(half, opt_half, 5)
    buf = io.BytesIO()
    torch.save({"params": [p.detach() for p in half], "opt": opt_half.state_dict()}, buf)
    ckpt = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    resumed, opt_resumed = _run(5, start=[nn.Parameter(t) for t in ckpt["params"]])
    opt_resumed.load_state_dict(ckpt["opt"])
    _train(resumed, opt_resumed, 5, first=5)
    for a, b in zip(params, resumed, strict=True):
        assert torch.equal(a, b)  # same arithmetic, same rcqr sketch seeds: bit-identical


def test_bf16_state_and_autocast():
    ref, opt_ref = _run(5)
    _train(ref, opt_ref, 5)
    # autocast must not reach the optimizer's math: bit-identical to the run without it
    auto, opt_auto = _run(5)
    _train(auto, opt_auto, 5, autocast=True)
    for a, b in zip(ref, auto, strict=True):
        assert torch.equal(a, b)
    low, opt_low = _run(5, opt_kw={"state_dtype": torch.bfloat16})
    _train(low, opt_low, 5)
    st = opt_low.state[low[0]]
    assert st["momentum"].dtype == torch.bfloat16 and st["Q"].dtype == torch.bfloat16
    moved = (ref[0] - _run(0)[0][0]).abs().max()
    assert (low[0] - ref[0]).abs().max() < 0.05 * moved  # bf16 momentum changes the trajectory only slightly
    opt_low.load_state_dict(opt_low.state_dict())
    assert opt_low.state[low[0]]["Q"].dtype == torch.bfloat16  # torch would have cast it to fp32


def test_adamw_group_equals_torch_adamw():
    gen = torch.Generator().manual_seed(0)
    a = nn.Parameter(torch.randn(5, 3, generator=gen))
    b = nn.Parameter(a.detach().clone())
    mat = nn.Parameter(torch.randn(4, 4, generator=gen))
    ours = Dion([{"params": [mat]}, {"params": [a], "algorithm": "adamw", "lr": 0.01}], lr=0.1, weight_decay=0.1,
                betas=(0.8, 0.9), eps=1e-6)  # fmt: skip
    theirs = torch.optim.AdamW([b], lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)
    for _ in range(5):
        g = torch.randn(5, 3, generator=gen)
        a.grad, b.grad, mat.grad = g.clone(), g.clone(), torch.randn(4, 4, generator=gen)
        ours.step()
        theirs.step()
    torch.testing.assert_close(a.detach(), b.detach(), atol=1e-7, rtol=0)
    assert (a - torch.randn(5, 3, generator=torch.Generator().manual_seed(0))).abs().max() > 1e-2


def test_dion_update_function_reports_sqrt_r():
    X, G = torch.randn(20, 30), torch.randn(20, 30)
    stats = dion_update(X, G, torch.zeros(20, 30), init_q(20, 30, 5, transposed=True, seed=0), lr=0.01,
                        transposed=True)  # fmt: skip
    assert stats["update_norm"] == pytest.approx(math.sqrt(5), rel=1e-5)


def test_bad_groups_are_rejected():
    with pytest.raises(ValueError, match="unknown param-group keys"):
        Dion([{"params": [nn.Parameter(torch.zeros(3, 3))], "beta1": 0.9}])
    with pytest.raises(ValueError, match="2-D"):
        Dion([nn.Parameter(torch.zeros(3))])
