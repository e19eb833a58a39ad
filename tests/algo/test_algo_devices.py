"""Every algo function keeps its outputs on the input's device.

On "meta" any tensor made on the CPU by mistake (other than a 0-dim scalar) raises when combined with the
inputs, so this runs the check without a GPU; "cuda" runs when one is present. Functions that assert on
tensor values (outcome_reward with `answered`, token_level_rewards) need real data: they run on cuda only.
"""

import pytest
import torch

from reasonrl.algo import advantages, filters, kl, losses, rewards

DEVICES = ["meta", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def _outputs(device):
    b, t, v = 4, 5, 7
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, t, generator=g).to(device)
    y = torch.randn(b, t, generator=g).to(device)
    mask = (torch.rand(b, t, generator=g) > 0.3).to(device)
    correct = torch.tensor([True, False, True, True], device=device)
    lengths = torch.tensor([3, 30, 300, 3000], device=device)
    logits = torch.randn(b, t, v, generator=g).to(device)
    targets = torch.randint(0, v, (b, t), generator=g).to(device)
    lam = advantages.length_adaptive_lambda(lengths)
    out = [
        lam,
        *advantages.gae(x, y, mask, gamma=1.0, lam=lam),
        *advantages.gae(x, y, mask, gamma=0.9, lam=0.95),
        *advantages.decoupled_gae(x, y, mask, gamma=1.0, lam_policy=lam),
        advantages.group_advantages(x[:, 0], 2),
        advantages.whiten(x, mask, shift_mean=False),
        losses.explained_variance(x, y, mask),
        losses.positive_nll(x, mask, correct),
        rewards.outcome_reward(correct),
        rewards.overlong_penalty(lengths, max_len=400, cache_len=200),
        filters.dynamic_sampling_mask(correct, 2),
        kl.kl_k1(x, y),
        kl.kl_k2(x, y),
        kl.kl_k3(x, y),
        kl.entropy_from_logits(logits, chunk_size=8),
        kl.token_logprobs_from_logits(logits, targets, chunk_size=8),
    ]
    for agg in losses.AGG_MODES:
        out.append(losses.aggregate(x, mask, agg=agg))
        loss, stats = losses.policy_loss(x, y, y, mask, clip_high=0.28, dual_clip=3.0, agg=agg)
        out += [loss, *stats.values()]
        loss, stats = losses.value_loss(x, y, y, mask, clip=0.5, agg=agg)
        out += [loss, *stats.values()]
    if device != "meta":
        out.append(rewards.outcome_reward(correct, answered=correct | lengths.gt(10)))
        full = torch.ones(b, t, dtype=torch.bool, device=device)
        out.append(rewards.token_level_rewards(x[:, 0], full, kl=y, kl_coef=0.1))
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_outputs_stay_on_input_device(device):
    for i, out in enumerate(_outputs(device)):
        assert out.device.type == device, f"output {i} on {out.device}"
