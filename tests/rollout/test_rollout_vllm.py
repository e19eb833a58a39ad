"""The vLLM backend built from the policy, in GRPO steps (slow; runs only where vllm is installed).

    make vllm-env && .venv-vllm/bin/pytest -q -m slow tests/rollout/test_rollout_vllm.py
"""

from __future__ import annotations

import pytest
import torch

from reasonrl.algo.advantages import group_advantages
from reasonrl.config import load_config
from reasonrl.model.logprobs import sequence_logprobs
from reasonrl.model.setup import load_or_build
from reasonrl.optim import build_optimizer
from reasonrl.reward import build_reward
from reasonrl.tasks.synthetic import generate as synthetic
from reasonrl.train import rl

pytestmark = pytest.mark.slow
vllm = pytest.importorskip("vllm", reason="vllm is not installed: its tests run in the environment `make vllm-env` "
                                          "builds (.venv-vllm/bin/pytest -m slow tests/rollout/test_rollout_vllm.py)")
from reasonrl.rollout import vllm_backend  # noqa: E402  (after the skip: imports vllm lazily, but only makes sense here)


def test_three_grpo_steps_with_vllm_rollouts(tmp_path):
    """Each step: vLLM samples from the policy's current weights (the engine's readable weights == the policy's,
    and vLLM's log-probs at T = 0.7 match teacher forcing with the policy, which covers the linears vLLM's CPU
    build repacks), then the update moves the policy away from the engine (by more than the tolerance in those
    log-probs, so a stale engine would fail the next check), and the next step's sampling loads it again. One
    engine for the whole run."""
    cfg = load_config(None, ["--model.path=", "--model.preset=tiny", "--rollout.backend=vllm",
                             "--rollout.temperature=0.7", "--rollout.max_new_tokens=24", "--rollout.num_samples=4",
                             "--rl.algo=grpo", "--rl.prompts_per_step=4", "--rl.minibatch_size=16",
                             "--optim.lr=1e-3", "--log.progress=false"])
    policy, tokenizer = load_or_build(cfg)
    optimizer = build_optimizer(policy, cfg.optim)
    records = synthetic(12, seed=0, difficulty=1)
    reward = build_reward(cfg)
    engines = set()
    for step in range(3):
        batch, _ = rl.rollout_and_score(policy, tokenizer, records[4 * step : 4 * step + 4], cfg, step, reward)
        llm = vllm_backend.policy_engine(policy, tokenizer)
        engines.add(id(llm))
        assert vllm_backend.max_weight_gap(llm, policy) == 0.0, f"step {step}: engine weights differ from policy"
        check = dict(vllm_backend.last_check)
        assert check["logp_gap"] < vllm_backend.LOGP_TOL and check["kept_vllm"] == 1.0, check
        assert batch.size == 16 and bool(batch.mask.any())
        adv = group_advantages(batch.scores + torch.arange(16) * 1e-2, 4)  # (N,): untrained, rewards tie
        batch.advantages = adv[:, None] * batch.mask
        rl.policy_update(policy, optimizer, batch, cfg, seed=step)
        assert vllm_backend.max_weight_gap(llm, policy) > 0.0, f"step {step}: the update changed nothing"
        with torch.no_grad():
            moved = sequence_logprobs(policy.eval(), batch.input_ids, batch.attention_mask, temperature=0.7)
        assert (moved - batch.old_logp)[batch.mask].abs().max() > vllm_backend.LOGP_TOL
    assert len(engines) == 1
