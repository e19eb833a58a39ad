"""One reward of a run from what the user named: a built-in kind (`KINDS`), a file or module path
(`"rewards.py:format_bonus"`, `"my_pkg.rewards:score"`) or a Python callable handed to the API.

What a path names is loaded (`user_code.load_object`) and told apart by its signature (`user_code.shape`):
a builder is called once and its `Reward` used; a `Reward` is used as it is; a plain function (TRL's or verl's
shape) is wrapped in `PlainReward`, which calls it (in this process, or in `reward.workers` processes with a
timeout per call) and turns its numbers into `Scored` with `correct = None` (a plain function returns scores only).
User code that raises becomes a `RewardCallError` carrying its own frames.
"""

from __future__ import annotations

import importlib
import numbers
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reasonrl.config import Config
from reasonrl.errors import UserError, one_line, warn
from reasonrl.reward.base import KINDS, BadScores, Responses, Reward, RewardCallError, Scored
from reasonrl.reward.pool import WorkerPool
from reasonrl.reward.user_code import accepted, call_unit, load_object, parse_spec, shape, user_frames


@dataclass
class Part:
    """One reward of a run: `label` names it in messages, `name` in the log (`reward/<name>`)."""

    label: str
    name: str
    reward: Reward


def load_kind(kind: str | Callable, cfg: Config, *, tokenizer=None, device=None) -> Part:
    """The reward `kind` names (module docstring), built for `cfg`. Any problem is one UserError line."""
    if not isinstance(kind, str):
        if not callable(kind):
            raise UserError(f"reward: expected a kind (a name or 'file.py:name') or a function, got "
                            f"{type(kind).__name__}")
        name = getattr(kind, "__name__", type(kind).__name__)
        return Part(repr(name), name, adapt(kind, repr(name), cfg, tokenizer=tokenizer, device=device, spec=None))
    if kind in KINDS:
        module, name = KINDS[kind].split(":")
        builder = getattr(importlib.import_module(module), name)
        return Part(repr(kind), kind, builder(cfg, tokenizer=tokenizer, device=device))
    if ":" not in kind:
        raise UserError(f"reward.kind {kind!r} is not one of {', '.join(sorted(KINDS))}, nor 'path/to/file.py:name' "
                        f"or 'package.module:name'")
    spec = parse_spec(kind)
    return Part(repr(kind), spec[2], adapt(load_object(spec, repr(kind)), repr(kind), cfg, tokenizer=tokenizer,
                                           device=device, spec=spec))


def adapt(obj: Any, label: str, cfg: Config, *, tokenizer, device, spec: tuple | None) -> Reward:
    """`obj` as a `Reward`, by its shape (`user_code.shape`); `spec` re-loads it in a worker (None: pickle it)."""
    how = shape(obj, label)
    if how == "builder":
        try:
            built = obj(cfg, tokenizer=tokenizer, device=device)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"reward {label}: its builder raised {type(e).__name__}: {one_line(str(e))}") from None
        if not callable(built):
            raise UserError(f"reward {label}: its builder returned a {type(built).__name__}, not a Reward")
        return UserCode(built, label)
    if how == "reward":
        return UserCode(obj, label)
    return PlainReward(obj, how, label, cfg, spec)


@dataclass
class UserCode:
    """A user's `Reward` (built by their builder, or their own): an exception it raises becomes a RewardCallError
    with their frames (a UserError it raises on purpose stays one)."""

    reward: Reward
    label: str

    def __call__(self, responses: Responses) -> Scored:
        try:
            return self.reward(responses)
        except UserError:
            raise
        except Exception as e:
            raise RewardCallError(self.label, type(e).__name__, one_line(str(e)), user_frames(e.__traceback__)) from e


class PlainReward:
    """A TRL- or verl-shaped function as a `Reward` (module docstring).

    TRL: one call for all completions in this process, `fn(prompts=..., completions=..., **columns)`; `prompts` are
    the records' prompts as written in the data (no template), `columns` every other record field (answer,
    response, id and any extra JSONL / dataset field) as a list aligned with the completions, None where a record
    lacks it. verl: one call per completion, `fn(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`
    with data_source the record's `data_source` field or `data.source`, ground_truth its answer, extra_info its
    `extra_info` field or else its other fields. A function without **kwargs gets only the arguments it names.
    With `reward.workers`, every call scores one completion, in a worker, within `reward.timeout_s`.
    """

    def __init__(self, fn: Callable, how: str, label: str, cfg: Config, spec: tuple | None):
        self.fn, self.how, self.label = fn, how, label
        self.accepts, self.required = accepted(fn)
        self.on_error = None if cfg.reward.on_error == "fail" else float(cfg.reward.on_error)
        self.data_source = cfg.data.source
        self.warned = False
        self.pool = None
        if cfg.reward.workers:
            self.pool = WorkerPool(spec or ("pickle", _pickled(fn, label)), workers=cfg.reward.workers,
                                   timeout_s=cfg.reward.timeout_s, label=label)

    def __call__(self, responses: Responses) -> Scored:
        n = len(responses.texts)
        calls = self._calls(responses)  # [(rows, kwargs)]
        kwargs = [k for _, k in calls]
        outcomes = self.pool.run(kwargs) if self.pool is not None else [call_unit(self.fn, k) for k in kwargs]
        scores = torch.zeros(n, dtype=torch.float32)
        extras: dict[str, list[float]] = {}
        num_errors = 0
        for (rows, _), outcome in zip(calls, outcomes, strict=True):
            if outcome[0] == "error":
                _, exc_type, message, frames = outcome
                if responses.dry or self.on_error is None:
                    raise RewardCallError(self.label, exc_type, message, frames)
                self._warn_once(exc_type, message)
                scores[rows] = self.on_error
                num_errors += len(rows)
                continue
            values, extra = self._values(outcome[1], len(rows))
            scores[rows] = torch.tensor(values, dtype=torch.float32)
            for k, v in extra.items():
                extras.setdefault(k, []).extend(v)
        stats = {k: sum(v) / len(v) for k, v in extras.items()}
        if self.on_error is not None:
            stats["errors"] = num_errors / max(n, 1)  # logged as reward/errors: the fraction scored on_error
        return Scored(scores=scores, correct=None, stats=stats)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def _calls(self, responses: Responses) -> list[tuple[list[int], dict]]:
        """`[(rows, kwargs)]`: each call's completions (rows of `responses`) and arguments (class docstring)."""
        records, texts, n = responses.records, responses.texts, len(responses.texts)
        if self.how == "verl":
            given = {"data_source", "solution_str", "ground_truth", "extra_info"}
            args = [{"data_source": r.get("data_source") or self.data_source, "solution_str": t,
                     "ground_truth": r.get("answer"), "extra_info": _extra_info(r)}
                    for r, t in zip(records, texts, strict=True)]
            rows = [[i] for i in range(n)]
        else:
            columns = list(dict.fromkeys(k for r in records for k in r if k != "prompt"))
            full = {"prompts": [r["prompt"] for r in records], "completions": list(texts),
                    **{k: [r.get(k) for r in records] for k in columns}}
            given = set(full)
            if self.pool is None:
                args, rows = [full], [list(range(n))]
            else:
                args, rows = [{k: [v[i]] for k, v in full.items()} for i in range(n)], [[i] for i in range(n)]
        missing = self.required - given
        if missing:
            raise UserError(f"reward {self.label}: its parameter(s) {', '.join(sorted(missing))} match nothing it is "
                            f"given ({', '.join(sorted(given))})")
        keep = (lambda a: a) if self.accepts is None else (lambda a: {k: v for k, v in a.items() if k in self.accepts})
        return [(r, keep(a)) for r, a in zip(rows, args, strict=True)]

    def _values(self, value: Any, n: int) -> tuple[list[float], dict[str, list[float]]]:
        """A call's answer as `n` numbers (and a verl dict's other numeric entries); a BadScores line otherwise."""
        if self.how == "verl":
            extra = {}
            if isinstance(value, dict):
                extra = {k: [float(v)] for k, v in value.items() if k != "score" and isinstance(v, numbers.Real)}
                value = value.get("score")
            if not isinstance(value, numbers.Real):
                raise BadScores(self.label, f"returned a {type(value).__name__}; a verl-style reward returns a "
                                            f"number, or a dict with a numeric 'score'")
            return [float(value)], extra
        if isinstance(value, torch.Tensor | np.ndarray):
            value = value.tolist()
        if not isinstance(value, list | tuple):
            raise BadScores(self.label, f"returned a {type(value).__name__}, not a list of {n} numbers (one per "
                                        f"completion)")
        if len(value) != n:
            raise BadScores(self.label, f"returned {len(value)} scores for {n} completions")
        for i, v in enumerate(value):
            if not isinstance(v, numbers.Real):
                raise BadScores(self.label, f"returned a {type(v).__name__} ({one_line(repr(v), 40)}) for "
                                            f"completion {i}, not a number")
        return [float(v) for v in value], {}

    def _warn_once(self, exc_type: str, message: str) -> None:
        if not self.warned:
            self.warned = True
            warn(f"reward {self.label} raised {exc_type}: {message}; its completions are scored reward.on_error = "
                 f"{self.on_error} (the fraction so scored is logged as reward/errors; this is said once)")


def _extra_info(record: dict) -> dict:
    if isinstance(record.get("extra_info"), dict):
        return record["extra_info"]
    return {k: v for k, v in record.items() if k not in ("prompt", "answer")}


def _pickled(fn: Callable, label: str) -> bytes:
    try:
        return pickle.dumps(fn)
    except Exception as e:
        raise UserError(f"reward {label}: reward.workers sends the function to worker processes, so it must be "
                        f"defined at the top level of a module (pickling it failed: {one_line(str(e))})") from None
