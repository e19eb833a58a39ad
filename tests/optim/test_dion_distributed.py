"""Two gloo ranks on localhost vs one process: Dion data parallel, its checkpoint/resume, Dion and Muon on FSDP2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
import _dist_worker as w  # noqa: E402

from reasonrl.optim.dion import data_parallel_comm_bytes  # noqa: E402


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, free_port) -> list[dict]:
    out = tmp_path_factory.mktemp("dist")
    w.preload()
    # fork: the children inherit torch as imported here (spawn would re-import it: ~10 s on a busy 2-core box)
    mp.start_processes(w.run, args=(w.WORLD, free_port(), str(out)), nprocs=w.WORLD, start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(w.WORLD)]


def _one_process_dp() -> list[list[torch.Tensor]]:
    """The same parameters updated by a one-process Dion on the rank-averaged gradients."""
    params = w.dp_params()
    opt = w.dp_optimizer(params)
    traj = []
    for step in range(w.DP_STEPS):
        per_rank = [w.dp_grads(step, r) for r in range(w.WORLD)]
        for i, p in enumerate(params):
            p.grad = sum(g[i] for g in per_rank) / w.WORLD
        opt.step()
        traj.append([p.detach().clone() for p in params])
    return traj


def test_data_parallel_equals_one_process_on_averaged_gradient(ranks):
    ref = _one_process_dp()
    for step in range(w.DP_STEPS):
        for i in range(len(ref[step])):
            # weights are identical on every rank (same averaged P and R, same arithmetic) ...
            assert torch.equal(ranks[0]["dp_traj"][step][i], ranks[1]["dp_traj"][step][i])
            # ... and equal to the one-process run on the mean gradient up to fp32 rounding
            torch.testing.assert_close(ranks[0]["dp_traj"][step][i], ref[step][i], atol=2e-5, rtol=0)
    # the run really moved the weights, so the comparison is not vacuous
    assert (ref[-1][0] - w.dp_params()[0]).abs().max() > 0.05


def test_data_parallel_momenta_differ_until_synchronised(ranks):
    before = [torch.stack([r["moms_before_sync"][i] for r in ranks]) for i in range(len(w.DP_SHAPES))]
    after = [torch.stack([r["moms_after_sync"][i] for r in ranks]) for i in range(len(w.DP_SHAPES))]
    for i, (m, n) in enumerate(w.DP_SHAPES):
        if (m, n) != (2, 2):  # compressed: each rank keeps its own momentum
            assert (before[i][0] - before[i][1]).abs().max() > 1e-2
        torch.testing.assert_close(after[i][0], after[i][1], atol=0, rtol=0)
        torch.testing.assert_close(after[i][0], before[i].mean(0), atol=1e-6, rtol=0)


def test_data_parallel_resume_equals_uninterrupted(ranks):
    for r in ranks:
        for got, want in zip(r["dp_resumed"], r["dp_traj"][-1], strict=True):
            torch.testing.assert_close(got, want, atol=2e-5, rtol=0)


def test_data_parallel_bytes_match_the_formula(ranks):
    # 2 ranks, fp32: per element of P, R or a full gradient, 2 (W - 1) / W * 4 = 4 bytes.
    # (32,24) r=6: 56*6 = 336, twice; (24,40) r=6: 64*6 = 384, twice; (16,16) r=4: 32*4 = 128, twice;
    # (2,2) r=1 is not compressed (4*1 >= 4): 4; AdamW vector: 12.  Sum 672 + 768 + 256 + 4 + 12 = 1712 -> 6848 B.
    expect = data_parallel_comm_bytes(w.DP_SHAPES, rank_fraction=0.25, world=2, num_scalar=12)
    assert expect["dion"] == 6848
    assert expect["all_reduce"] == 4 * (2 * 768 + 2 * 960 + 2 * 256 + 4 + 12)
    assert all(b == 6848 for b in ranks[0]["dp_bytes"])


def _one_process_fsdp(make_opt) -> list[list[torch.Tensor]]:
    model = w.fsdp_model()
    opt = make_opt(model)
    traj = []
    for step in range(w.FSDP_STEPS):
        batches = [w.fsdp_batch(step, r) for r in range(w.WORLD)]
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        (model(x) - y).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        traj.append([p.detach().clone() for p in model.parameters()])
    return traj


def test_fsdp2_dion_equals_one_process_transposed(ranks):
    ref = _one_process_fsdp(lambda model: w.fsdp_dion(model, transpose=True))
    shape_rule = _one_process_fsdp(w.fsdp_dion)  # transpose iff m < n: differs for the tall matrices
    for step in range(w.FSDP_STEPS):
        for got, want in zip(ranks[0]["fsdp_dion"][step], ref[step], strict=True):
            torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
    assert (ranks[0]["fsdp_dion"][-1][0] - shape_rule[-1][0]).abs().max() > 1e-4  # (32, 24) is tall


def test_fsdp2_muon_equals_one_process(ranks):
    ref = _one_process_fsdp(w.fsdp_muon)
    for step in range(w.FSDP_STEPS):
        for got, want in zip(ranks[1]["fsdp_muon"][step], ref[step], strict=True):
            torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
