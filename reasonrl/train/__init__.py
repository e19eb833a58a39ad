"""Trainers: one file per family (sft.py; ppo.py for PPO/VAPO; grpo.py for GRPO/DAPO)."""


def run_rl(cfg) -> dict:
    """Run the RL trainer named by `rl.algo` (ppo: PPO/VAPO with a critic; grpo: GRPO/DAPO)."""
    if cfg.rl.algo == "ppo":
        from reasonrl.train.ppo import train
    else:
        from reasonrl.train.grpo import train
    return train(cfg)
