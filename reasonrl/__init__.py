"""reasonrl: reinforcement-learning post-training of reasoning language models.

    import reasonrl
    cfg = reasonrl.load_config("configs/grpo_tiny.toml", {"train.steps": 20})
    result = reasonrl.rl(cfg, reward=["verifier", my_reward], train_data=my_dataset)

The names below are imported when first used (`reasonrl/api.py`), so `import reasonrl` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_WHERE = {"load_config": "reasonrl.api", "sft": "reasonrl.api", "rl": "reasonrl.api", "evaluate": "reasonrl.api",
          "Result": "reasonrl.api", "Config": "reasonrl.config", "Responses": "reasonrl.reward.base",
          "Scored": "reasonrl.reward.base", "UserError": "reasonrl.errors", "UserCodeError": "reasonrl.errors"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'reasonrl' has no attribute {name!r}")
