"""Concise RL's length argument as a bandit, trained with the project's own GAE and PPO loss.

The paper (arXiv 2504.05185 §4, notes A.2) argues: with GAE lambda < 1, the per-response token-mean PPO loss
of a response with terminal reward r and a flat critic c is L(T) = -(r - c)(1 - lambda^T) / (T(1 - lambda)),
which falls with length T when r - c < 0 (length is rewarded) and rises when r - c > 0 (brevity is rewarded).

The simulation: a policy that at every token stops with probability s = sigmoid(theta), so T ~ Geometric(s) and
E[T] = 1/s; correctness ~ Bernoulli(p) independent of T; reward +1 / -0.5 (Concise RL) on the last token
(`algo.rewards.token_level_rewards`); a critic that is a constant c for every state (`zero`: c = 0, never
trained; `learned`: c regressed on the GAE returns with `algo.losses.value_loss`); advantages from
`algo.advantages.gae` (gamma 1, no whitening: whitening would remove the sign of mean(r - V) that the argument
is about); one PPO update per batch with `algo.losses.policy_loss` under `seq-mean-token-mean` (the paper's
per-response 1/T) or `seq-mean-token-sum` (token-sum: no 1/T). Every cell (lambda, p, loss, critic) runs in
one batch of rows; a cell's loss touches only its own theta and c, and Adam is element-wise, so the cells are
independent runs that share the GAE call (`gae` takes a per-row lambda).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from reasonrl.algo.advantages import gae
from reasonrl.algo.losses import policy_loss, value_loss
from reasonrl.algo.rewards import token_level_rewards

LAMBDAS = (0.9, 0.95, 1.0)
SOLVE_RATES = (0.05, 0.2, 0.5, 0.9)
LOSSES = {"seq-mean-token-mean": "seq-mean-token-mean", "token-sum": "seq-mean-token-sum"}
CRITICS = ("zero", "learned")


@dataclass(frozen=True)
class BanditConfig:
    steps: int = 200
    """PPO updates (one rollout batch each)."""
    batch: int = 64
    """Episodes per update and cell."""
    start_length: float = 10.0
    """E[T] at the start: theta_0 = logit(1 / start_length)."""
    max_len: int = 100
    """Episodes are cut at this many tokens (rare: 1e-4 of episodes at E[T] = 10)."""
    lr: float = 0.02
    """Adam learning rate of theta."""
    critic_lr: float = 0.05
    """Adam learning rate of the learned critic's constant."""
    correct_reward: float = 1.0
    wrong_reward: float = -0.5
    seed: int = 0


def cells() -> list[dict]:
    return [{"lam": lam, "p": p, "loss": loss, "critic": critic}
            for lam, p, loss, critic in itertools.product(LAMBDAS, SOLVE_RATES, LOSSES, CRITICS)]


def sample_episodes(stop_prob: torch.Tensor, max_len: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`(mask, stopped)`: per row, True on tokens t < T with T ~ Geometric(stop_prob) cut at max_len; `stopped`
    (bool, per row) is False for a cut episode, whose last token was a `continue`."""
    u = torch.rand(stop_prob.shape[0], max_len, generator=g)  # (R, L)
    stops = u < stop_prob[:, None]  # (R, L)
    first = torch.where(stops.any(-1), stops.float().argmax(-1), max_len - 1)  # (R,) index of the last token
    mask = torch.arange(max_len)[None, :] <= first[:, None]  # (R, L)
    return mask, stops.any(-1)


def run_bandit(cfg: BanditConfig = BanditConfig(), grid: list[dict] | None = None) -> list[dict]:
    """Train every cell of `grid` (default: all of `cells()`) and return them with `length_start` / `length_end`
    = E[T] = 1 / sigmoid(theta) before and after, and `critic_end` (the learned critic's constant)."""
    grid = cells() if grid is None else grid
    num, b = len(grid), cfg.batch
    g = torch.Generator().manual_seed(cfg.seed)
    theta = torch.full((num,), -math.log(cfg.start_length - 1), requires_grad=True)  # logit(1 / start_length)
    crit = torch.zeros(num, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=cfg.lr)
    critic_opt = torch.optim.Adam([crit], lr=cfg.critic_lr)
    lam = torch.tensor([c["lam"] for c in grid]).repeat_interleave(b)  # (R,)
    p = torch.tensor([c["p"] for c in grid]).repeat_interleave(b)  # (R,)
    learned = torch.tensor([c["critic"] == "learned" for c in grid])  # (C,)
    start = (1 / torch.sigmoid(theta)).tolist()
    for _ in range(cfg.steps):
        th = theta.repeat_interleave(b)  # (R,) with grad
        mask, stopped = sample_episodes(torch.sigmoid(th).detach(), cfg.max_len, g)  # (R, L), (R,)
        last = mask.sum(-1) - 1  # (R,)
        is_stop = (torch.arange(cfg.max_len)[None, :] == last[:, None]) & stopped[:, None]  # (R, L)
        logp = torch.where(is_stop, torch.nn.functional.logsigmoid(th)[:, None],
                           torch.nn.functional.logsigmoid(-th)[:, None])  # (R, L) log pi(action)
        correct = torch.rand(p.shape, generator=g) < p  # (R,)
        scores = torch.where(correct, cfg.correct_reward, cfg.wrong_reward)  # (R,)
        rewards = token_level_rewards(scores, mask)  # (R, L)
        values = torch.where(learned, crit, 0.0).detach().repeat_interleave(b)[:, None].expand_as(mask)  # (R, L)
        advantages, returns = gae(rewards, values.contiguous(), mask, gamma=1.0, lam=lam)
        loss = 0.0
        critic_loss = 0.0
        for i, c in enumerate(grid):
            rows = slice(i * b, (i + 1) * b)
            pl, _ = policy_loss(logp[rows], logp[rows].detach(), advantages[rows], mask[rows], agg=LOSSES[c["loss"]])
            loss = loss + pl
            if c["critic"] == "learned":
                v = crit[i].expand(mask[rows].shape)  # (b, L)
                vl, _ = value_loss(v, v.detach(), returns[rows], mask[rows], agg="token-mean")
                critic_loss = critic_loss + vl
        opt.zero_grad()
        critic_opt.zero_grad()
        (loss + critic_loss).backward()
        opt.step()
        critic_opt.step()
    end = (1 / torch.sigmoid(theta)).tolist()
    return [{**c, "length_start": s, "length_end": e, "critic_end": float(crit[i].detach()) if c["critic"] == "learned"
             else 0.0} for i, (c, s, e) in enumerate(zip(grid, start, end, strict=True))]
