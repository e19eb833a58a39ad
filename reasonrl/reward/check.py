"""A reward is part of a run's validation: one dry call on the first training records, before anything is written;
then every call of the run is checked, and a failure stops every process at the same point.

Building a reward (`build_reward`) checks what it can without data (a judge loads, options agree, a user's file
imports and has a function of a known shape). What depends on the records (a field the reward reads, anchors that
need several samples per prompt, a user function that raises or returns the wrong thing) shows only when the reward
is called. `dry_run` calls it once, on `rollout.num_samples` stand-in completions of each of the first two training
records, so such a run stops with one line (exit 2) before its run directory is claimed, not at step 1 after an
`--overwrite` has cleared the old run. It returns the reward wrapped in a `RewardGuard` for the run.

The stand-in completion of a record is its gold response (`data.response_field`) when it has one, else
`The answer is \\boxed{<answer>}.`, else the empty string: text a verifier can read, any reward can score.
"""

from __future__ import annotations

import re

import torch

from reasonrl import dist
from reasonrl.config import Config
from reasonrl.errors import UserCodeError, UserError, one_line, warn
from reasonrl.reward.base import BadScores, Responses, Reward, RewardCallError, Scored, check_scored
from reasonrl.reward.combine import Combined
from reasonrl.tasks.prompts import record_prompt

NUM_RECORDS = 2  # records of the dry call

__all__ = ["NUM_RECORDS", "RewardGuard", "check_scored", "dry_responses", "dry_run", "stand_in"]


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
                     truncated=torch.zeros(len(rows), dtype=torch.bool), group=torch.tensor(rows, dtype=torch.long),
                     dry=True)


def dry_run(reward: Reward, records, cfg: Config, *, tokenizer, training: bool = True) -> RewardGuard:
    """Call `reward` once on the first `NUM_RECORDS` of `records` (module docstring) and check its answer; return it
    guarded for the run (`RewardGuard`). Any failure becomes one UserError line naming the reward; under torchrun
    every process raises the same one (each dry-runs the same records; the first error is shared, so no process
    goes on to wait in a collective).

    A reward that judges no correctness (`Scored.correct` None: only plain functions, say) cannot steer what needs
    it: with `training`, `rl.pos_nll_coef > 0` and dynamic sampling on accuracy are refused, else one warning line
    says that accuracy is not logged."""
    name = reward.name if isinstance(reward, Combined) else repr(cfg.reward.kind)
    error, reports_correct = None, True
    try:
        head = [records[i] for i in range(min(NUM_RECORDS, len(records)))]
        responses = dry_responses(head, cfg, tokenizer)
        scored = reward(responses)
        check_scored(scored, len(responses.texts), name)
        reports_correct = scored.correct is not None
        if training and not reports_correct:
            _check_without_correctness(cfg, name)
    except RewardCallError as e:
        error = (f"reward {e.name} raised on a dry call on the first {NUM_RECORDS} records: {e.exc_type}: "
                 f"{e.message}{_last_frame(e.frames)}")
    except UserError as e:
        error = str(e)
    except Exception as e:  # a reward's own failure, e.g. a record without a field it reads
        error = (f"reward {name} failed on a dry call on the first {NUM_RECORDS} records: {type(e).__name__}: "
                 f"{one_line(e)}")
    error = dist.first_error(error)
    if error is not None:
        if isinstance(reward, Combined):
            reward.close()
        raise UserError(error)
    if training and not reports_correct:
        warn(f"reward {name} judges no correctness (none of its kinds reports it, as the verifier does): the training "
             f"accuracy (acc) and the lengths of correct / wrong answers are not logged")
    return RewardGuard(reward, name, reports_correct)


def _check_without_correctness(cfg: Config, name: str) -> None:
    if cfg.rl.pos_nll_coef > 0:
        raise UserError(f"rl.pos_nll_coef = {cfg.rl.pos_nll_coef} trains on correct responses, but reward {name} "
                        f"judges no correctness: add the verifier to reward.kinds, or set rl.pos_nll_coef = 0")
    if cfg.rl.dynamic_sampling and cfg.rl.dynamic_sampling_on == "acc":
        raise UserError(f"rl.dynamic_sampling keeps groups by accuracy, but reward {name} judges no correctness: "
                        f"set rl.dynamic_sampling_on = 'reward', or add the verifier to reward.kinds")


class RewardGuard:
    """The reward a run calls once its dry call passed. Every answer is checked (`check_scored`, and correctness
    judged as on the dry call). A failure (user code raising, an unusable answer, a record the reward cannot read)
    is kept, not raised: the call returns stand-in zeros, and every process raises the first failure of any process
    at `raise_errors(step)`, a point all of them reach right after the step's rollouts (a process raising alone
    would leave the others waiting in a collective). Nothing is trained on the stand-ins.

    User code that raised or answered wrongly: `UserCodeError` (exit 1) whose first line names the reward, the step
    and the exception, followed by the user's own frames; a UserError (a built-in kind's bad record) stays one."""

    def __init__(self, reward: Reward, name: str, reports_correct: bool):
        self.reward, self.name, self.reports_correct = reward, name, reports_correct
        self.failure: dict | None = None

    def __call__(self, responses: Responses) -> Scored:
        n = len(responses.texts)
        if self.failure is None:
            try:
                scored = self.reward(responses)
                check_scored(scored, n, self.name)
                if (scored.correct is not None) != self.reports_correct:
                    raise BadScores(self.name, "judged correctness on its dry call but not now" if self.reports_correct
                                    else "judged no correctness on its dry call, but does now")
                return scored
            except RewardCallError as e:
                self.failure = {"name": e.name, "raised": True, "what": f"{e.exc_type}: {e.message}",
                                "frames": e.frames}
            except BadScores as e:
                self.failure = {"name": e.name, "raised": False, "what": e.what, "frames": ""}
            except UserError as e:
                self.failure = {"user_error": str(e)}
        return Scored(scores=torch.zeros(n), correct=torch.zeros(n, dtype=torch.bool) if self.reports_correct else None)

    def raise_errors(self, step: int | None) -> None:
        """Raise the first failure of any process (by rank), on every process; `step` None: during evaluation."""
        first = dist.first_error(self.failure)
        if first is None:
            return
        if isinstance(self.reward, Combined):
            self.reward.close()
        when = f"at step {step}" if step is not None else "during evaluation"
        if "user_error" in first:
            raise UserError(f"{first['user_error']} ({when})")
        verb = "raised " if first["raised"] else ""
        raise UserCodeError(f"reward {first['name']} {verb}{when}: {first['what']}", first["frames"])


def _last_frame(frames: str) -> str:
    """` (at FILE:LINE)` of the innermost frame in `frames` (`user_code.user_frames`), or nothing."""
    found = re.findall(r'File "([^"]+)", line (\d+)', frames)
    return f" (at {found[-1][0]}:{found[-1][1]})" if found else ""
