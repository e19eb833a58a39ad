"""Graph capture of the decode step (`SamplingParams.compile`, rollout/compiled.py) against the eager step."""

from __future__ import annotations

import math

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from reasonrl.model.tiny import build_model, build_shape
from reasonrl.rollout import compiled, engine
from reasonrl.rollout.sampler import SamplingParams, sample


def _eos_model(tokenizer, mean_length: float):
    """The micro model with a bias on EOS in lm_head (still a plain Linear), so samples end after ~mean_length
    tokens and the engine drops finished rows mid-run."""
    model = build_model("micro", tokenizer, seed=4).eval()
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    head.weight = model.lm_head.weight
    with torch.no_grad():
        head.bias.zero_()
        head.bias[tokenizer.eos_token_id] = math.log((model.config.vocab_size - 1) / (mean_length - 1))
    model.lm_head = head
    return model


def test_one_graph_serves_every_step_and_equals_eager(rollout_tokenizer, prompts, monkeypatch):
    """Dynamo traces the whole step once (batch and cache width dynamic): no recompile per step, per dropped
    row or per prompt width, and the traced step samples the same tokens as the eager one."""
    model = _eos_model(rollout_tokenizer, mean_length=8.0)
    counter = CompileCounter()
    monkeypatch.setattr(engine, "compiled_step", lambda: compiled.compiled_step(backend=counter))
    runs = [(prompts, SamplingParams(max_new_tokens=10, n=6, seed=5)),
            (prompts[:2], SamplingParams(max_new_tokens=12, n=8, seed=6, temperature=0.8))]
    for batch, params in runs:
        eager = sample(model, rollout_tokenizer, batch, params)
        graph = sample(model, rollout_tokenizer, batch, SamplingParams(**{**params.__dict__, "compile": True}))
        assert torch.equal(eager.input_ids, graph.input_ids)
        assert (eager.logprobs - graph.logprobs).abs().max() < 1e-6
        lengths = eager.response_lengths.tolist()
        assert min(lengths) < 4 and max(lengths) > 6, f"rows should finish at different steps: {lengths}"
    assert counter.frame_count == 1, f"{counter.frame_count} graphs for 2 runs (one expected)"
    # another model shape (2 heads of 16, grouped-query attention) retraces, and still equals eager
    other = build_shape(rollout_tokenizer, seed=7, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=2, num_key_value_heads=1).eval()
    params = SamplingParams(max_new_tokens=6, n=2, seed=8)
    eager = sample(other, rollout_tokenizer, prompts, params)
    graph = sample(other, rollout_tokenizer, prompts, SamplingParams(**{**params.__dict__, "compile": True}))
    assert torch.equal(eager.input_ids, graph.input_ids)
    assert (eager.logprobs - graph.logprobs).abs().max() < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_inductor_step_equals_eager(rollout_tokenizer, prompts, arch):
    """The inductor-compiled step (what `compile=True` runs) samples what the eager step samples, log-probs
    within float error (fused kernels change the order of float sums)."""
    model = build_model("micro", rollout_tokenizer, arch=arch, seed=2).eval()
    params = dict(temperature=0.9, max_new_tokens=14, n=2, seed=3)
    eager = sample(model, rollout_tokenizer, prompts, SamplingParams(**params), prefixes=["", "A", ""])
    graph = sample(model, rollout_tokenizer, prompts, SamplingParams(compile=True, **params), prefixes=["", "A", ""])
    assert torch.equal(eager.input_ids, graph.input_ids)
    assert (eager.logprobs - graph.logprobs).abs().max() < 1e-4


def test_rollout_compile_config_reaches_the_engine(rollout_tokenizer, monkeypatch):
    """`rollout.compile = true` in a trainer config makes the trainers' rollout run the compiled step, with the
    same samples as the eager one."""
    from reasonrl.config import load_config
    from reasonrl.reward import build_reward
    from reasonrl.tasks.synthetic import generate as synthetic
    from reasonrl.train import rl

    counter = CompileCounter()
    monkeypatch.setattr(engine, "compiled_step", lambda: compiled.compiled_step(backend=counter))
    model = build_model("micro", rollout_tokenizer, seed=9)
    records = synthetic(2, seed=3, difficulty=1)
    batches = []
    for flag in ("false", "true"):
        cfg = load_config(None, ["--rollout.max_new_tokens=6", "--rollout.num_samples=2", "--rl.algo=grpo",
                                 f"--rollout.compile={flag}", "--log.progress=false"])
        batches.append(rl.rollout_and_score(model, rollout_tokenizer, records, cfg, 0, build_reward(cfg))[0])
    assert counter.frame_count == 1, "the compiled step was not used"
    assert torch.equal(batches[0].input_ids, batches[1].input_ids)
