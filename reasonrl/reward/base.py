"""The reward interface: what a reward sees (`Responses`), what it returns (`Scored`), and the kind registry.

    reward = build_reward(cfg, tokenizer=tokenizer, device=device)   # once per run (reward/combine.py)
    scored = reward(Responses(records=..., prompts=..., texts=..., lengths=..., truncated=..., group=...))
    scored.scores   # (N,) float32: the scalar reward of each response (before DAPO overlong shaping)
    scored.correct  # (N,) bool: verified correct (accuracy, dynamic sampling and positive-example NLL use it), or
                    # None: this reward does not judge correctness (a format bonus, a user's plain function)
    scored.critic_context  # optional: per-response text for the PPO critic's input (`rl.critic_values`)

Every trainer (PPO/VAPO, GRPO/DAPO) scores rollouts only through this call, so a kind written for one paper
(Concise RL's length-aware reward, Pairwise-RL's judge against an anchor, SWiRL's process judge) works in all.
A kind is a builder `build(cfg, *, tokenizer, device) -> Reward`; `KINDS` maps `reward.kind` to the builder's
import path `"package.module:function"`, imported only when that kind is used. A user's own reward is a file or
module path instead (`reward/custom.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

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
    dry: bool = False  # the dry call before a run (`reward/check.py`): fail loudly, never fall back (reward.on_error)

    @classmethod
    def of_rollout(cls, ro, records: list[dict], prompts: list[str], lengths: torch.Tensor) -> Responses:
        """The responses of a sampler `Rollout` of `prompts` (one per record): each row's record and prompt by its
        `prompt_index`, `truncated` where it stopped at max_new_tokens. `lengths`: the response tokens per row (the
        caller says how it counts them)."""
        rows = [int(i) for i in ro.prompt_index]
        return cls(records=[records[i] for i in rows], prompts=[prompts[i] for i in rows],
                   texts=list(ro.response_texts), lengths=lengths,
                   truncated=torch.tensor([f == "length" for f in ro.finish_reasons], dtype=torch.bool),
                   group=ro.prompt_index.clone())

    def __post_init__(self):
        n = len(self.texts)
        assert len(self.records) == len(self.prompts) == n, "records, prompts and texts must align"
        assert self.lengths.shape == self.truncated.shape == self.group.shape == (n,), "per-response tensors are (N,)"


@dataclass
class Scored:
    """A reward's answer for N responses."""

    scores: torch.Tensor  # (N,) float32
    correct: torch.Tensor | None  # (N,) bool, or None: this reward does not judge correctness
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


class BadScores(UserError):
    """A reward's answer that cannot be used (wrong length or type, not finite): `what` says how."""

    def __init__(self, name: str, what: str):
        super().__init__(f"reward {name}: {what}")
        self.name, self.what = name, what


class RewardCallError(Exception):
    """User reward code raised (or timed out): its exception's type and message, and the frames of its traceback
    outside reasonrl (`user_code.user_frames`), carried as text (it may have come from a worker process)."""

    def __init__(self, name: str, exc_type: str, message: str, frames: str):
        super().__init__(f"reward {name} raised {exc_type}: {message}")
        self.name, self.exc_type, self.message, self.frames = name, exc_type, message, frames


def check_scored(scored: Scored, num: int, name: str) -> None:
    """A reward's answer for `num` responses: one finite score per response, and `correct` None or one bool per
    response (else a BadScores line naming the reward)."""
    scores, correct = scored.scores, scored.correct
    if not isinstance(scores, torch.Tensor) or scores.shape != (num,):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise BadScores(name, f"returned scores of shape {got} for {num} responses (want one per response)")
    bad = (~torch.isfinite(scores.float())).nonzero()
    if bad.numel():
        raise BadScores(name, f"returned a non-finite score ({float(scores[bad[0, 0]])}) for response "
                              f"{int(bad[0, 0])} of {num}")
    if correct is not None and (not isinstance(correct, torch.Tensor) or correct.shape != (num,)
                                or correct.dtype != torch.bool):
        raise BadScores(name, f"`correct` must be None or a bool tensor of shape ({num},)")
    if scored.critic_context is not None and len(scored.critic_context) != num:
        raise BadScores(name, f"returned {len(scored.critic_context)} critic contexts for {num} responses")
