"""Code run by each of the 2 gloo ranks of test_reward_distributed.py (forked, localhost only).

`run(rank, world, port, out_dir, tokenizer_dir, rewards_py)` runs two scenarios and saves `out_dir/rank{rank}.json`:
- stats: the verifier plus a file's function, each rank scoring its own rows of one batch (3 and 5 rows, uneven on
  purpose), their `reward/<name>` means combined over the ranks (`reward/stats.py`);
- error: a real 2-step GRPO run whose reward function raises at step 2 on rank 1 only.
"""

from __future__ import annotations

import json
import os

import torch

from reasonrl import dist
from reasonrl.config import load_config
from reasonrl.errors import UserCodeError
from reasonrl.reward import Responses, build_reward
from reasonrl.reward.check import RewardGuard
from reasonrl.reward.stats import reward_stat_means, reward_stat_sums

WORLD = 2
TEXTS = ["\\boxed{2}", "2 and 22", "no", "\\boxed{5}", "55555", "x1", "\\boxed{4}", "44"]
ANSWERS = ["2", "2", "2", "4", "4", "4", "4", "4"]
SPLIT = [range(0, 3), range(3, 8)]


def stats_config(rewards_py: str):
    return load_config(None, [f'--reward.kinds=["verifier", "{rewards_py}:digits"]', "--reward.weights=[1.0, 0.5]"])


def responses(rows) -> Responses:
    rows = list(rows)
    records = [{"prompt": f"p{i}", "answer": ANSWERS[i]} for i in rows]
    return Responses(records=records, prompts=[r["prompt"] for r in records], texts=[TEXTS[i] for i in rows],
                     lengths=torch.tensor([len(TEXTS[i]) for i in rows]), truncated=torch.zeros(len(rows), dtype=bool),
                     group=torch.arange(len(rows)))


def _stats(rank: int, rewards_py: str) -> dict:
    reward = RewardGuard(build_reward(stats_config(rewards_py)), "r", True)
    scored = reward(responses(SPLIT[rank]))
    reward.raise_errors(1)
    return {"scores": scored.scores.tolist(),
            "means": reward_stat_means(reward_stat_sums(scored.stats, len(SPLIT[rank])))}


def _error(rank: int, out_dir: str, tokenizer_dir: str, rewards_py: str) -> dict:
    cfg = load_config(None, [
        "--model.path=", "--model.preset=micro", f"--model.tokenizer_path={tokenizer_dir}", "--data.difficulty=1",
        "--data.num_train=32", "--train.eval_examples=2", "--train.eval_every=0", "--train.steps=3",
        "--train.save_every=1", "--rollout.max_new_tokens=8", "--rollout.num_samples=2", "--rl.algo=grpo",
        "--rl.prompts_per_step=2", "--rl.minibatch_size=4", "--log.progress=false", "--log.plots=false",
        f"--log.run_dir={out_dir}/run", f'--reward.kinds=["verifier", "{rewards_py}:rank1_fails_at_step_2"]'])
    from reasonrl.train import grpo

    try:
        grpo.train(cfg)
    except UserCodeError as e:
        return {"message": str(e), "frames": e.frames}
    return {"message": None}


def run(rank: int, world: int, port: int, out_dir: str, tokenizer_dir: str, rewards_py: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init("gloo")
    try:
        out = {"stats": _stats(rank, rewards_py), "error": _error(rank, out_dir, tokenizer_dir, rewards_py)}
    finally:
        dist.destroy()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
