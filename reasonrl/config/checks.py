"""Range checks: values whose type is right but whose range is not (one line, exit 2, before anything runs)."""

from __future__ import annotations

import math

from reasonrl.config.sections import SYNTHETIC_LEVELS, Config
from reasonrl.errors import UserError


def check_ranges(cfg: Config, where: str) -> None:
    """Values whose type is right but whose range is not (one line, exit 2, before anything runs)."""
    t, r = cfg.train, cfg.rl
    checks = [
        (t.eval_samples >= 1, f"train.eval_samples must be >= 1, got {t.eval_samples}"),
        (t.eval_temperature >= 0, f"train.eval_temperature must be >= 0 (0 = greedy), got {t.eval_temperature}"),
        (0 < t.eval_top_p <= 1, f"train.eval_top_p must lie in (0, 1], got {t.eval_top_p}"),
        (r.dual_clip == 0 or r.dual_clip > 1, f"rl.dual_clip must be 0 (off) or > 1, got {r.dual_clip}"),
        (0 <= r.clip_low < 1 and r.clip_high >= 0, f"rl.clip_low must lie in [0, 1) and rl.clip_high be >= 0, "
                                                    f"got {r.clip_low} / {r.clip_high}"),
    ]
    for key in ("train.steps", "train.batch_size", "train.grad_accum", "train.eval_examples", "rollout.batch_size",
                "rollout.num_samples", "data.num_train", "data.max_len", "data.max_line_bytes", "eval.num_samples"):
        value = getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1])
        checks.append((value >= 1, f"{key} must be >= 1, got {value}"))
    for key in ("train.eval_every", "train.save_every", "train.early_stop_patience", "eval.max_examples",
                "data.num_test"):
        value = getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1])
        checks.append((value >= 0, f"{key} must be >= 0, got {value}"))
    for key, value in (("optim.lr", cfg.optim.lr), ("rl.critic_lr", r.critic_lr)):
        checks.append((math.isfinite(value) and value > 0, f"{key} must be a finite number > 0, got {value}"))
    levels = ", ".join(str(level) for level in SYNTHETIC_LEVELS)
    checks.append((cfg.data.difficulty in SYNTHETIC_LEVELS,
                   f"data.difficulty must be one of {levels}, got {cfg.data.difficulty}"))
    checks.append((not (t.resume and t.overwrite), "--resume and --overwrite (train.resume, train.overwrite) "
                   "contradict each other: continue the run, or replace it"))
    checks.append((not r.overlong_penalty or 0 < r.overlong_cache <= cfg.rollout.max_new_tokens,
                   f"rl.overlong_cache must lie in [1, rollout.max_new_tokens = {cfg.rollout.max_new_tokens}] with "
                   f"rl.overlong_penalty on, got {r.overlong_cache}"))
    checks.append((not r.kl_in_reward or (r.algo == "ppo" and r.kl_coef > 0),
                   "rl.kl_in_reward needs rl.algo = 'ppo' (token rewards feed GAE) and rl.kl_coef > 0"))
    checks.append(("{prompt}" in r.critic_context_template and "{context}" in r.critic_context_template,
                   f"rl.critic_context_template must contain {{prompt}} and {{context}}, got "
                   f"{r.critic_context_template!r}"))
    checks.append((0 <= cfg.reward.length_start < cfg.reward.length_end,
                   f"reward.length_start must lie in [0, reward.length_end), got {cfg.reward.length_start} / "
                   f"{cfg.reward.length_end}"))
    checks += _reward_checks(cfg)
    for ok, message in checks:
        if not ok:
            raise UserError(f"{where}: {message}")


def _reward_checks(cfg: Config) -> list[tuple[bool, str]]:
    """The `[reward]` fields' shapes and ranges (which kinds exist is the reward layer's check: `reasonrl.reward`)."""
    r = cfg.reward
    return [
        (not (r.kinds and r.kind != "verifier"), f"set reward.kind (one reward) or reward.kinds (several), not both "
                                                 f"(got {r.kind!r} and {r.kinds})"),
        # without kinds the rewards may be the API's functions: `build_reward` counts them
        (not (r.kinds and r.weights) or len(r.weights) == len(r.kinds), f"reward.weights has {len(r.weights)} "
                                                                        f"entries for {len(r.kinds)} reward.kinds"),
        (all(math.isfinite(w) for w in r.weights), f"reward.weights must be finite numbers, got {r.weights}"),
        (r.workers >= 0, f"reward.workers must be >= 0 (0: in this process), got {r.workers}"),
        (math.isfinite(r.timeout_s) and r.timeout_s > 0, f"reward.timeout_s must be a finite number > 0, got "
                                                         f"{r.timeout_s}"),
        (r.on_error == "fail" or (isinstance(r.on_error, float) and math.isfinite(r.on_error)),
         f"reward.on_error must be \"fail\" or a finite number (the score of a failed call), got {r.on_error!r}"),
    ]
