"""A reward is part of a run's validation: one dry call on the first training records, before anything is written.

Building a reward (`build_reward`) checks what it can without data (a judge loads, options agree). What depends on
the records (a field the reward reads, anchors that need several samples per prompt, a user function that returns
the wrong thing) shows only when the reward is called. `dry_run` calls it once, on `rollout.num_samples` stand-in
completions of each of the first two training records, so such a run stops with one line before its run directory
is claimed, not at step 1 after an `--overwrite` has cleared the old run.

The stand-in completion of a record is its gold response (`data.response_field`) when it has one, else
`The answer is \\boxed{<answer>}.`, else the empty string: text a verifier can read, any reward can score.
"""

from __future__ import annotations

import torch

from reasonrl import dist
from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.reward.base import Responses, Reward, Scored
from reasonrl.tasks.prompts import record_prompt

NUM_RECORDS = 2  # records of the dry call


def stand_in(record: dict, cfg: Config) -> str:
    """The completion a dry call scores for `record` (module docstring)."""
    response = record.get(cfg.data.response_field)
    if isinstance(response, str) and response:
        return response
    answer = record.get("answer")
    return f"The answer is \\boxed{{{answer}}}." if answer not in (None, "") else ""


def dry_responses(records: list[dict], cfg: Config, tokenizer) -> Responses:
    """`rollout.num_samples` stand-in completions of each record, laid out as a rollout lays out its rows."""
    n = cfg.rollout.num_samples
    rows = [i for i in range(len(records)) for _ in range(n)]
    texts = [stand_in(records[i], cfg) for i in rows]
    prompts = [record_prompt(tokenizer, records[i], cfg.data.prompt_template) for i in rows]
    lengths = torch.tensor([len(tokenizer.encode(t, add_special_tokens=False)) for t in texts], dtype=torch.long)
    return Responses(records=[records[i] for i in rows], prompts=prompts, texts=texts, lengths=lengths,
                     truncated=torch.zeros(len(rows), dtype=torch.bool), group=torch.tensor(rows, dtype=torch.long))


def check_scored(scored: Scored, num: int, name: str) -> None:
    """A reward's answer for `num` responses: one finite score and one bool `correct` per response (else a
    UserError naming the reward)."""
    scores, correct = scored.scores, scored.correct
    if not isinstance(scores, torch.Tensor) or scores.shape != (num,):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise UserError(f"reward {name}: returned scores of shape {got} for {num} responses (want one per response)")
    bad = (~torch.isfinite(scores.float())).nonzero()
    if bad.numel():
        raise UserError(f"reward {name}: returned a non-finite score ({float(scores[bad[0, 0]])}) for response "
                        f"{int(bad[0, 0])} of {num}")
    if not isinstance(correct, torch.Tensor) or correct.shape != (num,) or correct.dtype != torch.bool:
        raise UserError(f"reward {name}: `correct` must be a bool tensor of shape ({num},)")
    if scored.critic_context is not None and len(scored.critic_context) != num:
        raise UserError(f"reward {name}: returned {len(scored.critic_context)} critic contexts for {num} responses")


def dry_run(reward: Reward, records, cfg: Config, *, tokenizer, name: str | None = None) -> None:
    """Call `reward` once on the first `NUM_RECORDS` of `records` (module docstring) and check its answer. Any
    failure becomes one UserError line naming the reward; under torchrun every process raises the same one (each
    dry-runs the same records; the first error is shared, so no process goes on to wait in a collective)."""
    name = name or repr(cfg.reward.kind)
    error = None
    try:
        head = [records[i] for i in range(min(NUM_RECORDS, len(records)))]
        responses = dry_responses(head, cfg, tokenizer)
        check_scored(reward(responses), len(responses.texts), name)
    except UserError as e:
        error = str(e)
    except Exception as e:  # a reward's own failure, e.g. a record without a field it reads
        error = (f"reward {name} failed on a dry call on the first {NUM_RECORDS} records of data.source "
                 f"{cfg.data.source!r}: {type(e).__name__}: {_one_line(e)}")
    errors = [e for e in dist.all_gather_object(error) if e is not None]
    if errors:
        raise UserError(errors[0])


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."
