"""Trainers: one file per family (sft.py; ppo.py for PPO/VAPO; grpo.py for GRPO/DAPO)."""


def run_rl(cfg, **data) -> dict:
    """Run the RL trainer named by `rl.algo` (ppo: PPO/VAPO with a critic; grpo: GRPO/DAPO); `data`: the trainers'
    `reward=`, `train_data=`, `test_data=`."""
    if cfg.rl.algo == "ppo":
        from reasonrl.train.ppo import train
    else:
        from reasonrl.train.grpo import train
    return train(cfg, **data)
