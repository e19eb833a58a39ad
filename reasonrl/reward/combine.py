"""The run's reward: `reward.kind`, or several kinds at once (`reward.kinds`, `reward.weights`) as a weighted sum.

    build_reward(cfg, tokenizer=..., device=...)              # the configured kind(s)
    build_reward(cfg, kinds=["verifier", format_bonus])        # the API: names and Python callables

With several kinds the score is sum_k w_k r_k; each kind's mean score is logged as `reward/<name>` and its own
statistics as `reward/<name>/<stat>`; `correct` is the AND of the kinds that report it (a response is correct when
every judge of correctness says so), None when none does; the critic context is the first one given. One kind is
its own reward (times its weight), with its statistics logged as before (`reward/<stat>`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.reward.base import Responses, Scored, check_scored
from reasonrl.reward.custom import Part, PlainReward, load_kind


@dataclass
class Combined:
    """The kinds of a run and their weights (module docstring)."""

    parts: list[Part]
    weights: list[float]

    @property
    def name(self) -> str:
        """How messages name the run's reward: `'verifier'`, or `'verifier' + 'rewards.py:format_bonus'`."""
        return " + ".join(p.label for p in self.parts)

    def __call__(self, responses: Responses) -> Scored:
        several = len(self.parts) > 1
        if not several and self.weights[0] == 1.0:
            return self.parts[0].reward(responses)
        n = len(responses.texts)
        total = torch.zeros(n, dtype=torch.float32)
        correct, critic_context, stats = None, None, {}
        for part, weight in zip(self.parts, self.weights, strict=True):
            scored = part.reward(responses)
            check_scored(scored, n, part.label)
            total = total + weight * scored.scores.float()
            if several:
                stats[part.name] = float(scored.scores.float().sum()) / max(n, 1)
            stats.update({(f"{part.name}/{k}" if several else k): v for k, v in scored.stats.items()})
            if scored.correct is not None:
                correct = scored.correct if correct is None else correct & scored.correct
            critic_context = scored.critic_context if critic_context is None else critic_context
        return Scored(scores=total, correct=correct, stats=stats, critic_context=critic_context)

    def close(self) -> None:
        """Stop the worker pools of the plain functions (a finished run's pools also stop when it is collected)."""
        for part in self.parts:
            if isinstance(part.reward, PlainReward):
                part.reward.close()


def build_reward(cfg: Config, *, tokenizer=None, device: torch.device | None = None,
                 kinds: str | Callable | Sequence[str | Callable] | None = None) -> Combined:
    """The reward configured by `reward.kind` / `reward.kinds` / `reward.weights`, or, when given, by `kinds` (a
    kind, a function, or a list of both, weighted by `reward.weights`): ready to call on `Responses`."""
    if kinds is None:
        specs = list(cfg.reward.kinds) or [cfg.reward.kind]
    else:
        specs = [kinds] if isinstance(kinds, str) or callable(kinds) else list(kinds)
    if not specs:
        raise UserError("reward: no reward given (an empty list)")
    weights = list(cfg.reward.weights) or [1.0] * len(specs)
    if len(weights) != len(specs):
        raise UserError(f"reward.weights has {len(weights)} entries for {len(specs)} rewards")
    parts = [load_kind(spec, cfg, tokenizer=tokenizer, device=device) for spec in specs]
    reward = Combined(parts, weights)
    names = [p.name for p in parts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        reward.close()
        raise UserError(f"reward.kinds: {', '.join(twice)} would be logged twice as reward/<name>; give each reward "
                        f"a different name")
    if cfg.reward.workers and not any(isinstance(p.reward, PlainReward) for p in parts):
        reward.close()
        raise UserError(f"reward.workers = {cfg.reward.workers} runs plain (TRL- or verl-style) functions, but "
                        f"reward {reward.name} has none")
    return reward
