"""Range checks: values whose type is right but whose range is not (one line, exit 2, before anything runs).

One loop (`check_fields`) covers every field of every section: a number must lie in its range (`RANGES` names one
for every int and float field, a list's items included), a float must be finite unless its docstring says "may be
inf" or "may be NaN", and text must be valid Unicode (a lone surrogate from the command line is refused here, not
in a tokenizer). `check_ranges` then adds the checks that relate fields to each other.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import typing
from dataclasses import dataclass, fields

from reasonrl.config import papers, sections
from reasonrl.config.sections import SYNTHETIC_LEVELS, Config
from reasonrl.errors import UserError, bad_text


@dataclass(frozen=True)
class Range:
    """lo <= x <= hi (`open` ends strict); None: unbounded on that side. `note` is added to the message."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    note: str = ""

    def ok(self, x: float) -> bool:
        if math.isnan(x):
            return False
        low = self.lo is None or (x > self.lo if self.lo_open else x >= self.lo)
        high = self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)
        return low and high

    def text(self, is_float: bool) -> str:
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            out = f"must lie in {left}{_num(self.lo)}, {_num(self.hi)}{right}"
        else:
            bound = "" if self.lo is None else f" {'>' if self.lo_open else '>='} {_num(self.lo)}"
            out = f"must be a finite number{bound}" if is_float else f"must be{bound}"
        return out + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class OneOf:
    """x is one of `values`."""

    values: typing.Collection[int]

    def ok(self, x: float) -> bool:
        return x in self.values

    def text(self, is_float: bool) -> str:
        return f"must be one of {', '.join(str(v) for v in sorted(self.values))}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


COUNT, COUNT0, SEED = Range(lo=1), Range(lo=0), Range(lo=0)
PROB, FINITE, POSITIVE, NONNEG = Range(0, 1), Range(), Range(lo=0, lo_open=True), Range(lo=0)
RANGES: dict[str, Range | OneOf] = {
    "model.init_seed": SEED, "model.lora_r": Range(lo=0, note="0 = off"), "model.lora_alpha": POSITIVE,
    "model.lora_dropout": Range(0, 1, hi_open=True),
    "data.num_train": COUNT, "data.num_test": COUNT0, "data.difficulty": OneOf(SYNTHETIC_LEVELS), "data.seed": SEED,
    "data.slip_fraction": PROB, "data.alt_fraction": PROB, "data.max_len": COUNT, "data.max_line_bytes": COUNT,
    "train.steps": COUNT, "train.batch_size": COUNT, "train.grad_accum": COUNT,
    "train.max_grad_norm": Range(lo=0, note="0: no clipping"), "train.seed": SEED, "train.eval_every": COUNT0,
    "train.eval_examples": COUNT, "train.eval_samples": COUNT, "train.eval_temperature": Range(lo=0, note="0 = greedy"),
    "train.eval_top_p": Range(0, 1, lo_open=True), "train.save_every": COUNT0, "train.early_stop_patience": COUNT0,
    "train.log_checkpoints": COUNT0,
    "optim.lr": POSITIVE, "optim.weight_decay": NONNEG, "optim.betas": Range(0, 1, hi_open=True), "optim.eps": POSITIVE,
    "optim.warmup_steps": COUNT0, "optim.min_lr_ratio": PROB, "optim.scalar_lr": Range(lo=0, note="0: optim.lr"),
    "optim.mu": Range(0, 1, hi_open=True), "optim.rank_fraction": Range(0, 1, lo_open=True),
    "optim.rank_multiple": COUNT, "optim.ns_steps": COUNT,
    "rollout.temperature": Range(lo=0, note="0 = greedy"), "rollout.top_p": Range(0, 1, lo_open=True),
    "rollout.top_k": Range(lo=0, note="0: off"), "rollout.max_new_tokens": COUNT, "rollout.num_samples": COUNT,
    "rollout.batch_size": COUNT,
    "eval.num_samples": COUNT, "eval.pass_k": COUNT, "eval.max_examples": COUNT0,
    "rl.prompts_per_step": COUNT, "rl.ppo_epochs": COUNT, "rl.minibatch_size": COUNT,
    "rl.clip_low": Range(0, 1, hi_open=True), "rl.clip_high": NONNEG, "rl.dual_clip": NONNEG, "rl.gamma": PROB,
    "rl.lam_policy": PROB, "rl.lam_critic": PROB, "rl.alpha": POSITIVE, "rl.pos_nll_coef": NONNEG,
    "rl.value_pretrain_steps": COUNT0, "rl.critic_lr": POSITIVE, "rl.value_clip": NONNEG, "rl.kl_coef": NONNEG,
    "rl.max_sample_rounds": COUNT, "rl.overlong_cache": COUNT,
    "reward.correct": FINITE, "reward.wrong": FINITE, "reward.no_answer": FINITE, "reward.length_start": COUNT0,
    "reward.length_end": COUNT, "reward.length_penalty": FINITE,
    "swirl.judge_noise": PROB, "swirl.max_steps": Range(lo=0, note="0: the paper's 5 / 10"),
    "swirl.step_tokens": COUNT, "swirl.kb_people": Range(lo=3, note="each person's manager and mentor are others"),
    "swirl.kb_seed": SEED, "swirl.result_chars": COUNT, "swirl.math_difficulty": OneOf(SYNTHETIC_LEVELS),
    "pairwise.num_train": COUNT, "pairwise.num_test": COUNT, "pairwise.seed": SEED, "pairwise.label_scale": NONNEG,
    "pairwise.offset": FINITE, "pairwise.recheck_cost": FINITE, "pairwise.hidden_errors": PROB,
    "pairwise.chosen_first": PROB, "pairwise.max_length": COUNT, "pairwise.num_bins": COUNT,
    "pairwise.best_of_n": COUNT, "pairwise.num_anchors": COUNT, "pairwise.scale": FINITE,
    "pairwise.judge_batch_size": COUNT,
    "reward.weights": FINITE, "reward.workers": Range(lo=0, note="0: in this process"), "reward.timeout_s": POSITIVE,
    "dist.lockstep_sync_every": COUNT,
}
"""The range of every int and float field (of a list field: of each item), by `section.key`."""


@functools.cache
def field_docs() -> dict[str, str]:
    """`section.key -> the field's docstring` (the string literal under it in sections.py or papers.py)."""
    by_class = {cls.__name__: name for name, cls in typing.get_type_hints(Config).items()}
    docs = {}
    for node in (n for module in (sections, papers) for n in ast.parse(inspect.getsource(module)).body):
        if not isinstance(node, ast.ClassDef) or node.name not in by_class:
            continue
        for item, after in zip(node.body, node.body[1:], strict=False):
            if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[f"{by_class[node.name]}.{item.target.id}"] = after.value.value
    return docs


def allows_nonfinite(doc: str) -> bool:
    """A float field whose docstring says "may be inf" or "may be NaN" is exempt from the finiteness check."""
    doc = doc.lower()
    return "may be inf" in doc or "may be nan" in doc


def _scalar_type(tp) -> type:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp


def check_fields(cfg: Config) -> str | None:
    """The first field whose value is out of its range, non-finite or not valid text, as a message; else None."""
    docs = field_docs()
    for section in fields(cfg):
        sec = getattr(cfg, section.name)
        hints = typing.get_type_hints(type(sec))
        for f in fields(sec):
            key, tp = f"{section.name}.{f.name}", _scalar_type(hints[f.name])
            value = getattr(sec, f.name)
            items = value if isinstance(value, list) else [value]
            if tp is str:
                for v in items:
                    if (bad := bad_text(v)) is not None:
                        return f"{key} is not valid Unicode text ({bad}: {v!r})"
            if tp not in (int, float):
                continue
            rng = RANGES[key]
            for i, v in enumerate(items):
                name = f"{key}[{i}]" if isinstance(value, list) else key
                nonfinite = tp is float and not math.isfinite(v) and not allows_nonfinite(docs.get(key, ""))
                if not rng.ok(v) or nonfinite:
                    return f"{name} {rng.text(tp is float)}, got {v}"
    return None


def check_ranges(cfg: Config, where: str) -> None:
    """Every field in its range (`check_fields`), then the checks that relate fields to each other."""
    t, r = cfg.train, cfg.rl
    checks = [
        (r.dual_clip == 0 or r.dual_clip > 1, f"rl.dual_clip must be 0 (off) or > 1, got {r.dual_clip}"),
        (not (t.resume and t.overwrite), "--resume and --overwrite (train.resume, train.overwrite) "
         "contradict each other: continue the run, or replace it"),
    ]
    checks.append((not r.overlong_penalty or 0 < r.overlong_cache <= cfg.rollout.max_new_tokens,
                   f"rl.overlong_cache must lie in [1, rollout.max_new_tokens = {cfg.rollout.max_new_tokens}] with "
                   f"rl.overlong_penalty on, got {r.overlong_cache}"))
    checks.append((not r.kl_in_reward or (r.algo == "ppo" and r.kl_coef > 0),
                   "rl.kl_in_reward needs rl.algo = 'ppo' (token rewards feed GAE) and rl.kl_coef > 0"))
    checks.append(("{prompt}" in r.critic_context_template and "{context}" in r.critic_context_template,
                   f"rl.critic_context_template must contain {{prompt}} and {{context}}, got "
                   f"{r.critic_context_template!r}"))
    checks.append((cfg.reward.length_start < cfg.reward.length_end,
                   f"reward.length_start must lie in [0, reward.length_end), got {cfg.reward.length_start} / "
                   f"{cfg.reward.length_end}"))
    checks.append((len(set(cfg.log.report_to)) == len(cfg.log.report_to),
                   f"log.report_to names a tracker twice: {cfg.log.report_to}"))
    checks += _reward_checks(cfg)
    checks.append((cfg.model.lora_r == 0 or bool(cfg.model.path),
                   f"model.lora_r = {cfg.model.lora_r} needs model.path: LoRA adapts a base model saved on disk "
                   "(`reasonrl init-model --out DIR` writes a fresh one)"))
    first = check_fields(cfg)
    if first is not None:
        raise UserError(f"{where}: {first}")
    for ok, message in checks:
        if not ok:
            raise UserError(f"{where}: {message}")


def _reward_checks(cfg: Config) -> list[tuple[bool, str]]:
    """The `[reward]` fields' shapes (their ranges are in RANGES; which kinds exist is the reward layer's check:
    `reasonrl.reward`)."""
    r = cfg.reward
    return [
        (not (r.kinds and r.kind != "verifier"), f"set reward.kind (one reward) or reward.kinds (several), not both "
                                                 f"(got {r.kind!r} and {r.kinds})"),
        # without kinds the rewards may be the API's functions: `build_reward` counts them
        (not (r.kinds and r.weights) or len(r.weights) == len(r.kinds), f"reward.weights has {len(r.weights)} "
                                                                        f"entries for {len(r.kinds)} reward.kinds"),
        (r.on_error == "fail" or (isinstance(r.on_error, float) and math.isfinite(r.on_error)),
         f"reward.on_error must be \"fail\" or a finite number (the score of a failed call), got {r.on_error!r}"),
    ]
