"""PPO with the `pairwise` reward and a critic that sees a sibling-sample anchor (`pairwise.critic_sees_anchor`,
notes B.3 [I]: V(x, y*, y_<t)): the real trainer (`ppo.train`) on the tiny config for two steps."""

import json
import math
from pathlib import Path

from safetensors.torch import load_file

from reasonrl.config import load_config
from reasonrl.model.setup import load_or_build
from reasonrl.model.value import value_model_from_policy
from reasonrl.pairwise.rm_train import rm_train
from reasonrl.train import ppo, rl

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "pairwise_tiny.toml")


def test_ppo_critic_reads_the_sibling_anchor(tmp_path, tokenizer_dir, monkeypatch):
    tok = f"--model.tokenizer_path={tokenizer_dir}"
    rm_train(load_config(TINY, [tok, "--train.steps=1", f"--log.run_dir={tmp_path / 'rm'}"]))
    seen, widths = [], []
    real_context, real_values = rl.with_critic_context, rl.token_values

    def context_spy(batch, tokenizer, prompts, contexts, cfg):
        p = batch.prompt_len
        texts = tokenizer.batch_decode(batch.input_ids[:, p:], skip_special_tokens=True)  # the policy's responses
        out = real_context(batch, tokenizer, prompts, contexts, cfg)
        seen.append((list(contexts), texts, out.critic_input_ids.shape[1]))
        return out

    monkeypatch.setattr(rl, "with_critic_context", context_spy)
    monkeypatch.setattr(rl, "token_values", lambda c, ids, *a, **k: widths.append(ids.shape[1]) or
                        real_values(c, ids, *a, **k))
    run = tmp_path / "ppo"
    cfg = load_config(TINY, [tok, f"--pairwise.judge_path={tmp_path / 'rm' / 'judge'}", "--pairwise.anchor=sample",
                             "--train.steps=2", f"--log.run_dir={run}"])
    assert cfg.pairwise.critic_sees_anchor and cfg.rollout.num_samples == 2
    ppo.train(cfg)

    assert len(seen) == 2  # one rollout per step, each with critic contexts
    for contexts, texts, _ in seen:
        # rows 2k, 2k+1 are the two samples of prompt k: each one's critic reads the other as its anchor
        assert contexts == [texts[i + 1 if i % 2 == 0 else i - 1] for i in range(len(texts))]
    # every critic pass (values for GAE, then the update's minibatch) ran on that step's critic input
    assert widths == [seen[0][2]] * 2 + [seen[1][2]] * 2
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"reward"' in x]
    assert len(steps) == 2
    for m in steps:
        assert math.isfinite(m["value_loss"]) and math.isfinite(m["policy_loss"]) and m["num_responses"] == 8
        assert math.isfinite(m["reward"]) and 0 <= m["reward/beats_anchor"] <= 1
    fresh, _ = load_or_build(cfg)
    critic0 = value_model_from_policy(fresh).state_dict()
    trained = load_file(str(next((run / "checkpoints").glob("*/critic/model.safetensors"))))
    assert max((critic0[k] - v).abs().max().item() for k, v in trained.items()) > 1e-6  # the critic trained
    policy = load_file(str(run / "final" / "model.safetensors"))
    assert max((fresh.state_dict()[k] - v).abs().max().item() for k, v in policy.items()) > 1e-6
