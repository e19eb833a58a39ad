"""Splitting a reasoning trace into thoughts and steps (Retro-Search, arXiv 2504.04383, its notation).

A trace T = {s_1, ..., s_tau} is a list of *thoughts*; each thought s_t = {s_t^1, ..., s_t^k} is a list of
*steps*. A step is the text up to and including the next step separator (the paper's blank line, `"\\n\\n"`);
the last step ends with the trace. A new thought starts at a step whose text, after its leading whitespace,
begins with a thought-transition keyword (`Wait`, `Alternatively`, ...; case-sensitive).

Steps keep their separators, so `"".join` of all steps of all thoughts gives back the trace exactly, and a
prefix of whole steps ends on a separator: the natural place to continue decoding from.

The synthetic world writes one step per sentence (`"Start with 7. 7 + 5 = 12. Wait, ..."`): its separator is
`"."` (`SYNTHETIC_STEP_SEP`), so steps are `"Start with 7."`, `" 7 + 5 = 12."`, `" Wait, ..."`. Cutting after
the period rather than after the space keeps every prefix on a token boundary of byte-level BPE tokenizers,
which attach the space to the next word.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_KEYWORDS: tuple[str, ...] = ("Alternatively", "Wait", "But wait", "Hmm", "Hold on", "Another approach")
"""Thought-transition keywords. The paper names "alternatively" (and "wait" for the ban); the rest are ours."""
PAPER_STEP_SEP = "\n\n"
"""The paper's step delimiter: a blank line."""
SYNTHETIC_STEP_SEP = "."
"""The synthetic world's step delimiter: one sentence per step (its traces hold no decimal points)."""


def split_steps(trace: str, step_sep: str = PAPER_STEP_SEP) -> list[str]:
    """Steps of `trace`, each ending with `step_sep` except possibly the last; `"".join` gives `trace` back."""
    assert step_sep, "step_sep must be non-empty"
    parts = trace.split(step_sep)
    steps = [p + step_sep for p in parts[:-1]]
    if parts[-1]:
        steps.append(parts[-1])
    return steps


def starts_thought(step: str, keywords: Sequence[str]) -> bool:
    """Whether `step` opens a new thought: after its leading whitespace it begins with a keyword."""
    return step.lstrip().startswith(tuple(keywords))


def segment(trace: str, keywords: Sequence[str] | None = None, step_sep: str = PAPER_STEP_SEP) -> list[list[str]]:
    """Thoughts of `trace`, each a non-empty list of steps; `"".join(sum(thoughts, []))` equals `trace`.

    The first step always opens the first thought; every later step that begins with a keyword opens a new
    one. An empty trace has no thoughts.
    """
    keywords = DEFAULT_KEYWORDS if keywords is None else tuple(keywords)
    thoughts: list[list[str]] = []
    for step in split_steps(trace, step_sep):
        if not thoughts or starts_thought(step, keywords):
            thoughts.append([step])
        else:
            thoughts[-1].append(step)
    return thoughts


def num_switches(trace: str, keywords: Sequence[str] | None = None, step_sep: str = PAPER_STEP_SEP) -> int:
    """Thought switches in `trace`: the number of thoughts after the first."""
    return max(0, len(segment(trace, keywords, step_sep)) - 1)
