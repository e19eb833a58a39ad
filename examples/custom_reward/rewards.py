"""The example's own reward: a format bonus in TRL's shape, summed with the built-in verifier (config.toml).

reasonrl calls it with keyword arguments, as TRL does: `prompts` (the problems as written in the data),
`completions` (the sampled responses) and every other field of the records as a list (here `answer` and `id`).
It returns one number per completion.
"""

import re

BOXED = re.compile(r"\\boxed\{[^{}]*\}")


def format_bonus(prompts, completions, **columns):
    """0.5 for a completion that states an answer as \\boxed{...} (the form the verifier reads), else 0."""
    return [0.5 if BOXED.search(c) else 0.0 for c in completions]
