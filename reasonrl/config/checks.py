"""Range checks: values whose type is right but whose range is not (one line, exit 2, before anything runs)."""

from __future__ import annotations

import math

from reasonrl.config.sections import Config
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
    from reasonrl.tasks.synthetic import LEVELS  # here: the world's levels are defined beside its generator

    levels = ", ".join(str(level) for level in sorted(LEVELS))
    checks.append((cfg.data.difficulty in LEVELS,
                   f"data.difficulty must be one of {levels}, got {cfg.data.difficulty}"))
    checks.append((not (t.resume and t.overwrite), "--resume and --overwrite (train.resume, train.overwrite) "
                   "contradict each other: continue the run, or replace it"))
    from reasonrl.reward.base import KINDS  # here, not at the top: reward.base imports this module

    known = ", ".join(sorted(KINDS))
    checks.append((cfg.reward.kind in KINDS, f"reward.kind {cfg.reward.kind!r} is not one of {known}"))
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
    m = cfg.model
    checks += [
        (m.lora_r >= 0, f"model.lora_r must be >= 0 (0 = off), got {m.lora_r}"),
        (math.isfinite(m.lora_alpha) and m.lora_alpha > 0, f"model.lora_alpha must be a finite number > 0, got "
                                                           f"{m.lora_alpha}"),
        (0 <= m.lora_dropout < 1, f"model.lora_dropout must lie in [0, 1), got {m.lora_dropout}"),
        (m.lora_r == 0 or bool(m.path), f"model.lora_r = {m.lora_r} needs model.path: LoRA adapts a base model saved "
                                        "on disk (`reasonrl init-model --out DIR` writes a fresh one)"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"{where}: {message}")
