"""Rewards as plug-ins: one interface every trainer calls (`build_reward(cfg, ...)(responses) -> Scored`).

A kind is chosen by `reward.kind` (or several by `reward.kinds`). The verifier kind lives here; paper kinds live in
their own packages and are registered by import path in `KINDS`, so the spine never imports a paper module (see
STYLE.md); a user's own reward is a file or module path (`custom.py`). Names are imported when first used, so that
the reward worker processes (`pool.py`) start without torch.
"""

from __future__ import annotations

import importlib

_WHERE = {"KINDS": "base", "Responses": "base", "Reward": "base", "Scored": "base", "register": "base",
          "build_reward": "combine"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"reasonrl.reward.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'reasonrl.reward' has no attribute {name!r}")
