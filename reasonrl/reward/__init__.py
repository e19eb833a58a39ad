"""Rewards as plug-ins: one interface every trainer calls (`build_reward(cfg, ...)(responses) -> Scored`).

A kind is chosen by `reward.kind`. The verifier kind lives here; paper kinds live in their own packages and are
registered by import path in `KINDS`, so the spine never imports a paper module (see STYLE.md).
"""

from reasonrl.reward.base import KINDS, Responses, Reward, Scored, build_reward, register

__all__ = ["KINDS", "Responses", "Reward", "Scored", "build_reward", "register"]
