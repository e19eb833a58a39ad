"""The reward interface: what a reward sees (`Responses`), what it returns (`Scored`), and the kind registry.

    reward = build_reward(cfg, tokenizer=tokenizer, device=device)   # once per run
    scored = reward(Responses(records=..., prompts=..., texts=..., lengths=..., truncated=..., group=...))
    scored.scores   # (N,) float32: the scalar reward of each response (before DAPO overlong shaping)
    scored.correct  # (N,) bool: verified correct (accuracy, dynamic sampling and positive-example NLL use it)
    scored.critic_context  # optional: per-response text for the PPO critic's input (`rl.critic_values`)

Every trainer (PPO/VAPO, GRPO/DAPO) scores rollouts only through this call, so a kind written for one paper
(Concise RL's length-aware reward, Pairwise-RL's judge against an anchor, SWiRL's process judge) works in all.
A kind is a builder `build(cfg, *, tokenizer, device) -> Reward`; `KINDS` maps `reward.kind` to the builder's
import path `"package.module:function"`, imported only when that kind is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from reasonrl.config import Config
from reasonrl.errors import UserError


@dataclass
class Responses:
    """N sampled responses and where they came from; the n samples of one prompt are contiguous rows."""

    records: list[dict]  # the task record each response answers (prompt, answer, and any other data fields)
    prompts: list[str]  # the formatted prompt text each response continues
    texts: list[str]  # decoded response texts
    lengths: torch.Tensor  # (N,) long: response tokens
    truncated: torch.Tensor  # (N,) bool: stopped by max_new_tokens
    group: torch.Tensor  # (N,) long: index of the prompt within this batch

    def __post_init__(self):
        n = len(self.texts)
        assert len(self.records) == len(self.prompts) == n, "records, prompts and texts must align"
        assert self.lengths.shape == self.truncated.shape == self.group.shape == (n,), "per-response tensors are (N,)"


@dataclass
class Scored:
    """A reward's answer for N responses."""

    scores: torch.Tensor  # (N,) float32
    correct: torch.Tensor  # (N,) bool
    stats: dict[str, float] = field(default_factory=dict)  # detached diagnostics, logged as `reward/<name>`
    # per-response text the PPO critic reads beside the prompt (`rl.critic_context_template`), e.g. Pairwise-RL's
    # anchor; None: the critic reads what the policy reads
    critic_context: list[str] | None = None


class Reward(Protocol):
    def __call__(self, responses: Responses) -> Scored: ...


KINDS: dict[str, str] = {
    "verifier": "reasonrl.reward.verifier:build",
    "process": "reasonrl.swirl.reward:build",
    "length_penalty": "reasonrl.concise.reward:build",
    "pairwise": "reasonrl.pairwise.reward:build",
}


def register(kind: str, path: str) -> None:
    """Add a kind at run time (for user code): `register("mine", "my_pkg.rewards:build")`."""
    KINDS[kind] = path


def build_reward(cfg: Config, *, tokenizer=None, device: torch.device | None = None) -> Reward:
    """The reward configured by `reward.kind`, ready to call on `Responses`."""
    kind = cfg.reward.kind
    if kind not in KINDS:
        raise UserError(f"reward.kind: unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    module, name = KINDS[kind].split(":")
    builder: Callable[..., Reward] = getattr(importlib.import_module(module), name)
    return builder(cfg, tokenizer=tokenizer, device=device)
