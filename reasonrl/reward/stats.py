"""A reward's statistics over rounds and processes: `Scored.stats` holds per-response means; summed as
`{name: (sum, count)}` they combine into response-weighted means over dynamic-sampling rounds, evaluation chunks
and processes (logged as `reward/<name>`)."""

from __future__ import annotations

import math

import torch

from reasonrl import dist


def reward_stat_sums(stats: dict[str, float], n: int) -> dict[str, tuple[float, float]]:
    """A reward's per-response means as `{name: (sum, count)}` over `n` responses, so that rounds of dynamic
    sampling (`merge_stat_sums`) and processes (`reward_stat_means`) combine into response-weighted means. A mean
    that is None or not finite (over no responses) contributes nothing."""
    return {k: ((v * n, float(n)) if v is not None and math.isfinite(v) else (0.0, 0.0)) for k, v in stats.items()}


def merge_stat_sums(a: dict[str, tuple[float, float]], b: dict[str, tuple[float, float]]) -> dict:
    """`{name: (sum, count)}` of two rounds added up."""
    out = dict(a)
    for k, (total, count) in b.items():
        total0, count0 = out.get(k, (0.0, 0.0))
        out[k] = (total0 + total, count0 + count)
    return out


def reward_stat_means(sums: dict[str, tuple[float, float]]) -> dict[str, float | None]:
    """`reward/<name>`: global response-weighted means of the reward's stats (None where no process had one). The
    names are gathered first, so every process makes the same collectives whatever its own stats held."""
    names = sorted(set().union(*dist.all_gather_object(sorted(sums))))
    if not names:
        return {}
    both = dist.all_reduce_sum(torch.tensor([sums.get(k, (0.0, 0.0)) for k in names], dtype=torch.float64))  # (K, 2)
    return {f"reward/{k}": float(t / c) if c > 0 else None for k, (t, c) in zip(names, both.tolist(), strict=True)}
