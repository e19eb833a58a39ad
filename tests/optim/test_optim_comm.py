"""One-process behaviour of the communication helpers (the 2-rank behaviour is in test_dion_distributed.py)."""

from __future__ import annotations

import torch
from torch import nn

from reasonrl.optim import comm
from reasonrl.optim.dion import Dion, init_q


def test_clip_grad_norm_equals_torch_on_one_process():
    # grads (3, 4) and (0, 12): norm sqrt(9 + 16 + 144) = 13; max_norm 6.5 halves them
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 12.0])
    norm = comm.clip_grad_norm_([a, b], 6.5)
    assert float(norm) == 13.0
    torch.testing.assert_close(a.grad, torch.tensor([1.5, 2.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(b.grad, torch.tensor([0.0, 6.0]), atol=1e-6, rtol=0)
    comm.clip_grad_norm_([a, b], 100.0)  # below the threshold: unchanged
    torch.testing.assert_close(b.grad, torch.tensor([0.0, 6.0]), atol=1e-6, rtol=0)


def test_reduce_apply_gather_without_group_applies_each_function():
    mats = [torch.ones(2, 2), 2 * torch.ones(3, 1)]
    out, sent = comm.reduce_apply_gather(mats, [lambda x: x + 1, lambda x: -x], None, mean=True)
    assert sent == 0
    torch.testing.assert_close(out[0], 2 * torch.ones(2, 2))
    torch.testing.assert_close(out[1], -2 * torch.ones(3, 1))
    assert comm.world_group() is None and comm.world_size(None) == 1


def test_param_groups_added_later_get_the_next_q_seed():
    a, b = nn.Parameter(torch.zeros(6, 4)), nn.Parameter(torch.zeros(6, 4))
    opt = Dion([a], rank_fraction=0.5, seed=3)
    opt.add_param_group({"params": [b]})
    a.grad, b.grad = torch.randn(6, 4), torch.zeros(6, 4)  # b's zero gradient keeps its Q0
    opt.step()
    torch.testing.assert_close(opt.state[b]["Q"], init_q(6, 4, 2, transposed=False, seed=4), atol=0, rtol=0)
