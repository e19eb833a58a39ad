"""VAPO's value-model arguments (arXiv 2504.05118 §4.1-4.2) on a chain with known true values.

The chain (gamma = 1, the paper's setting): a response of l tokens; at token t the frozen policy takes a good (1)
or a bad (0) action, a_t ~ Bernoulli(q) independently; the sparse terminal reward is r ~ Bernoulli(p) with

    p = p0 + effect * z_l,    z_t = (1/l) sum_{k<t} (a_k - q)          (p lies in [p0 - effect q, p0 + effect (1-q)])

so the true values and advantages are known in closed form:

    V*(t) = p0 + effect * z_t                    (the actions after t have mean q)
    A*(t) = Q*(t, a_t) - V*(t) = effect * (a_t - q) / l

The critic: V(t) = w[t] + u z_t, one weight per position plus a slope on the state feature z: a function of
(position, feature) that can represent V* exactly. Two inits:
- "zero": w = 0, u = 0 (the project's value head starts at zero: `model.value.value_model_from_policy`);
- "rm": reward-model-like (VAPO §4.1, from VC-PPO: a critic initialised from a reward model that scores only
  complete responses gives low values to early, incomplete prefixes):
  w[t] = rm_eos - (rm_eos - rm_start) exp(-t / rm_tau): low at the first tokens, the RM's score on long prefixes.
  The shape is our reading [I]; the paper gives no curve, hence `rm_start`, `rm_eos`, `rm_tau`.
Training: `critic_steps` steps on fresh batches of the frozen policy; the targets are the returns of
`algo.advantages.gae` with lambda_critic = 1 ("mc": Monte-Carlo returns, VAPO's value pretraining and decoupled
GAE) or `lam_fixed` ("td": the coupled PPO critic, lambda 0.95); the loss is `algo.losses.value_loss`. The optimizer
is plain SGD, so each position's weight moves a fraction `critic_lr` of the way to its mean target per step. With one
weight per position, Adam would give every position its own step size and move the early positions at full speed
towards targets that differ from their values by 1e-20 (the reward decayed by 0.95^2000); a critic whose parameters
are shared across positions has no such per-position normalisation. `critic_optim = "adam"` measures the difference
(docs/benchmarks.md, "VAPO mechanism").

Measured per length, critic and policy estimator ("fixed": lambda = lam_fixed; "one": lambda = 1; "adaptive":
`algo.advantages.length_adaptive_lambda`, 1 - 1/(alpha l), VAPO Eq. 5):
- bias(t) = E[A_hat(t) - A*(t)], exact: `gae` is linear in rewards and values, E[A*(t)] = 0, E[r] = p0 and
  E[V(t)] = w[t] (E[z_t] = 0), so bias = gae(rewards = p0 on the last token, values = w);
- var(t) = Var(A_hat(t) - A*(t)) over `eval_episodes` sampled episodes;
- v0 = V(0) = w[0], against the true E[r] = p0: how much of the terminal reward reached the first token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from reasonrl.algo.advantages import gae, length_adaptive_lambda
from reasonrl.algo.losses import value_loss
from reasonrl.algo.rewards import token_level_rewards

INITS = ("zero", "rm")
TRAININGS = ("untrained", "mc", "td")
ESTIMATORS = ("fixed", "one", "adaptive")


@dataclass(frozen=True)
class ChainConfig:
    lengths: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024, 2048)
    """Response lengths l, in tokens; every length is a separate chain (its own critics)."""
    p0: float = 0.5
    """E[r]: the policy's solve rate, the true value of the first state."""
    effect: float = 0.5
    """How far the actions move the solve rate: p = p0 + effect * mean(a - q); p stays in [0, 1] for effect <= 1."""
    q: float = 0.5
    """The frozen policy's probability of a good action at every token."""
    batch: int = 64
    """Episodes per critic step."""
    critic_steps: int = 50
    """Critic training steps: VAPO §5.1 warms the value network up for 50 steps before policy training."""
    critic_lr: float = 0.1
    """SGD step: the fraction of the way each position's weight moves to its mean target per step."""
    critic_optim: str = "sgd"
    """"sgd" (module docstring) or "adam" (torch.optim.Adam at critic_lr: every position gets its own step size)."""
    rm_start: float = 0.0
    """The RM-like init's value at t = 0 (an incomplete prefix scores low)."""
    rm_eos: float = 0.5
    """The RM-like init's value on long prefixes: its score of complete responses (calibrated: p0)."""
    rm_tau: float = 64.0
    """Tokens over which the RM-like init rises from rm_start to rm_eos."""
    lam_fixed: float = 0.95
    """The fixed lambda of PPO and VC-PPO (policy and coupled critic)."""
    alpha: float = 0.05
    """Length-adaptive lambda = 1 - 1/(alpha l) (VAPO Eq. 5; the paper's alpha, 0.05)."""
    eval_episodes: int = 256
    """Episodes sampled to measure the advantage-error variance."""
    early_tokens: int = 16
    """The early tokens of (a): t < early_tokens."""
    seed: int = 0

    def __post_init__(self):
        assert self.lengths and min(self.lengths) >= 2, f"lengths must be >= 2 tokens, got {self.lengths}"
        assert 0 < self.q < 1 and 0 <= self.effect <= 1, "q in (0, 1) and effect in [0, 1] keep p in [0, 1]"
        assert self.critic_optim in ("sgd", "adam"), f"critic_optim must be sgd or adam, got {self.critic_optim!r}"
        assert self.p0 - self.effect * self.q >= 0 and self.p0 + self.effect * (1 - self.q) <= 1, (
            f"p0={self.p0}, effect={self.effect}, q={self.q} let p leave [0, 1]")


def critic_names() -> list[str]:
    """`init+training` for every init and training, e.g. "rm+untrained", "rm+mc"."""
    return [f"{i}+{t}" for i in INITS for t in TRAININGS]


def sample_chain(num: int, length: int, cfg: ChainConfig, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """`(actions, z, rewards)`: `(N, l)` float actions in {0, 1}, `(N, l)` the feature z_t = (1/l) sum_{k<t} (a_k - q)
    (the state before token t; z_0 = 0), `(N,)` terminal rewards in {0, 1}."""
    actions = (torch.rand(num, length, generator=g) < cfg.q).float()  # (N, l)
    dev = torch.cumsum(actions - cfg.q, dim=1) / length  # (N, l): z after token t
    z = torch.cat([dev.new_zeros(num, 1), dev[:, :-1]], dim=1)  # (N, l): z before token t
    p = cfg.p0 + cfg.effect * dev[:, -1]  # (N,)
    rewards = (torch.rand(num, generator=g) < p).float()  # (N,)
    return actions, z, rewards


def true_advantages(actions: Tensor, cfg: ChainConfig) -> Tensor:
    """A*(t) = effect * (a_t - q) / l, `(N, l)`."""
    return cfg.effect * (actions - cfg.q) / actions.shape[1]


def init_weights(init: str, length: int, cfg: ChainConfig) -> Tensor:
    """The critic's position weights w before training, `(l,)`."""
    if init == "zero":
        return torch.zeros(length)
    assert init == "rm", f"init must be one of {INITS}, got {init!r}"
    t = torch.arange(length, dtype=torch.float32)
    return cfg.rm_eos - (cfg.rm_eos - cfg.rm_start) * torch.exp(-t / cfg.rm_tau)


def policy_lambdas(length: int, cfg: ChainConfig) -> dict[str, float]:
    """The policy's GAE lambda of each estimator for a response of `length` tokens."""
    adaptive = float(length_adaptive_lambda(torch.tensor([length]), alpha=cfg.alpha)[0])
    return {"fixed": cfg.lam_fixed, "one": 1.0, "adaptive": adaptive}


def critic_batch_values(w: Tensor, u: Tensor, z: Tensor) -> Tensor:
    """V(t) = w[t] + u z_t for K critics on N episodes: w `(K, l)`, u `(K,)`, z `(N, l)` -> `(K * N, l)`
    (critic-major rows)."""
    return (w[:, None, :] + u[:, None, None] * z[None]).reshape(-1, z.shape[1])


def train_critics(length: int, cfg: ChainConfig, g: torch.Generator) -> dict[str, tuple[Tensor, float]]:
    """Every critic of `critic_names()` for one length: `{name: (w (l,), u)}`. The trained ones learn side by side
    on the same episodes (each from its init, with its own lambda_critic), so they differ only in their targets."""
    trained = [(i, t) for i in INITS for t in TRAININGS if t != "untrained"]
    k, b = len(trained), cfg.batch
    lam = torch.tensor([1.0 if t == "mc" else cfg.lam_fixed for _, t in trained]).repeat_interleave(b)  # (K*B,)
    w = torch.stack([init_weights(i, length, cfg) for i, _ in trained]).requires_grad_()  # (K, l)
    u = torch.zeros(k, requires_grad=True)
    opt = (torch.optim.SGD if cfg.critic_optim == "sgd" else torch.optim.Adam)([w, u], lr=cfg.critic_lr)
    mask = torch.ones(k * b, length, dtype=torch.bool)
    for _ in range(cfg.critic_steps):
        _, z, r = sample_chain(b, length, cfg, g)
        values = critic_batch_values(w, u, z)  # (K*B, l) with grad
        rewards = token_level_rewards(r.repeat(k), mask)  # (K*B, l)
        _, returns = gae(rewards, values.detach(), mask, gamma=1.0, lam=lam)
        # sum over tokens, mean over a critic's B episodes: w[t] moves critic_lr * mean(V - R) at t
        loss, _ = value_loss(values, values.detach(), returns, mask, agg="seq-mean-token-sum", num_seqs=b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = {f"{i}+untrained": (init_weights(i, length, cfg), 0.0) for i in INITS}
    out.update({f"{i}+{t}": (w[n].detach().clone(), float(u[n].detach())) for n, (i, t) in enumerate(trained)})
    return {name: out[name] for name in critic_names()}


def exact_bias(w: Tensor, lam: Tensor, cfg: ChainConfig) -> Tensor:
    """bias(t) = E[A_hat(t) - A*(t)] = gae(p0 on the last token, w) for K critic / lambda rows: w `(K, l)`,
    lam `(K,)` -> `(K, l)` (module docstring)."""
    mask = torch.ones(w.shape, dtype=torch.bool)
    rewards = token_level_rewards(torch.full(w.shape[:1], cfg.p0), mask)  # (K, l)
    return gae(rewards, w, mask, gamma=1.0, lam=lam)[0]


def advantage_stats(critics: dict[str, tuple[Tensor, float]], length: int, cfg: ChainConfig,
                    g: torch.Generator) -> list[dict]:
    """One row per (critic, estimator): `early_bias` (mean bias over t < early_tokens), `abs_bias` (mean |bias|
    over all t), `var` (mean over t of the error variance over episodes), `sampled_early_bias` (the sampled
    counterpart of early_bias), `v0` and the policy's `lam`."""
    lams = policy_lambdas(length, cfg)
    pairs = [(c, e) for c in critics for e in ESTIMATORS]
    w = torch.stack([critics[c][0] for c, _ in pairs])  # (P, l)
    u = torch.tensor([critics[c][1] for c, _ in pairs])  # (P,)
    lam = torch.tensor([lams[e] for _, e in pairs])  # (P,)
    bias = exact_bias(w, lam, cfg)  # (P, l)
    n = cfg.eval_episodes
    actions, z, r = sample_chain(n, length, cfg, g)
    mask = torch.ones(len(pairs) * n, length, dtype=torch.bool)
    adv, _ = gae(token_level_rewards(r.repeat(len(pairs)), mask), critic_batch_values(w, u, z), mask, gamma=1.0,
                 lam=lam.repeat_interleave(n))
    err = adv.reshape(len(pairs), n, length) - true_advantages(actions, cfg)  # (P, N, l)
    var = err.var(dim=1)  # (P, l)
    early = min(cfg.early_tokens, length)
    return [{"length": length, "critic": c, "estimator": e, "lam": lams[e], "v0": float(critics[c][0][0]),
             "early_bias": float(bias[k, :early].mean()), "abs_bias": float(bias[k].abs().mean()),
             "var": float(var[k].mean()), "sampled_early_bias": float(err[k, :, :early].mean())}
            for k, (c, e) in enumerate(pairs)]


def run_chain(cfg: ChainConfig = ChainConfig()) -> list[dict]:
    """Every length of `cfg.lengths`: train the critics, measure every (critic, estimator). Rows carry `seed`.
    Each (seed, length) has its own generator, so a length's numbers do not depend on which other lengths run."""
    rows = []
    for length in cfg.lengths:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + length)
        critics = train_critics(length, cfg, g)
        rows += [{"seed": cfg.seed, **r} for r in advantage_stats(critics, length, cfg, g)]
    return rows


def decay(lam: float, length: int) -> float:
    """lam^(l-1): the weight of the terminal reward in the lambda-return target of the first token (VAPO §4.1)."""
    return math.pow(lam, length - 1)
