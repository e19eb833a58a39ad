"""`RetroParams`: how Retro-Search revises (no torch import, so the CLI parser can read the defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reasonrl.retro.segment import DEFAULT_KEYWORDS, PAPER_STEP_SEP


@dataclass(frozen=True)
class RetroParams:
    """How to revise. Defaults follow the paper where it says; the rest are marked."""

    keywords: tuple[str, ...] = DEFAULT_KEYWORDS
    """Thought-transition keywords: they open thoughts and are banned in the first step of a rollout."""
    step_sep: str = PAPER_STEP_SEP
    """Step delimiter (paper: a blank line; the synthetic world: "." -- see segment.py)."""
    mode: Literal["full", "partial", "early_exit"] = "full"
    """full: every thought boundary; partial: only the first `max_thoughts`; early_exit: force the answer."""
    max_thoughts: int = 1
    """partial mode: revise the boundaries after the first this-many thoughts (unverified detail)."""
    gamma: float = 0.9
    """Discount of the value gamma^(N - i) * R; not given in what we could read. Any 0 < gamma < 1 gives
    the same decisions with a 0/1 reward (shorter correct wins)."""
    num_rollouts: int = 1
    """Rollouts per boundary; the best by value (then fewer characters) is the candidate. Paper: not given."""
    temperature: float = 0.6
    """Rollout temperature (R1's recommended 0.6; the paper's value is not given)."""
    top_p: float = 0.95
    """Rollout nucleus threshold (R1's recommended 0.95)."""
    max_new_tokens: int = 512
    """Token budget of each rollout phase: the banned first step, then the free rest."""
    exit_text: str = "**Final Answer**\n\\boxed{"
    """early_exit: text forced after a thought to make the model answer (synthetic world: " The answer is \\boxed{").
    The model's answer is cut right after the brace that closes the last `\\boxed{` (nested braces counted)."""
    think_end: str = "</think>"
    """early_exit: the tag that closes an R1-style thinking block. When the reviser's tokenizer has it as a token
    and the prefix has not closed the block yet, `think_end + "\\n\\n"` is forced before `exit_text`, so the
    answer lands after the thinking block; "" = never (a model without one)."""
    exit_max_new_tokens: int = 64
    """early_exit: tokens the model may write after `exit_text` (a real boxed answer, `\\frac{3\\sqrt{3}}{4}` and
    the like, takes 10-30; the 16 of the first version cut long ones)."""
    stop: tuple[str, ...] = ()
    """Stop strings of the rollouts besides EOS."""
    seed: int = 0
    """Base seed of the rollouts; round r of chunk c samples with seed + 1000 * c + r."""

    def __post_init__(self):
        assert self.keywords and all(self.keywords), "keywords must be non-empty strings"
        assert self.step_sep, "step_sep must be non-empty"
        assert 0.0 < self.gamma < 1.0, f"gamma must lie in (0, 1), got {self.gamma}"
        assert self.num_rollouts >= 1 and self.max_thoughts >= 1, "num_rollouts and max_thoughts must be >= 1"
        assert self.exit_max_new_tokens >= 1, "exit_max_new_tokens must be >= 1"
