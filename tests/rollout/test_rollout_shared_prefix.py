"""Shared-prefix decoding: the prompts' keys and values stored once per prompt, the n samples attending over them
(`fast_step.shared_prefix_attention`, `SamplingParams.share_prefix`)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from reasonrl.errors import UserError
from reasonrl.model.tiny import build_shape
from reasonrl.rollout import fast_step
from reasonrl.rollout.fast_step import shared_prefix_attention
from reasonrl.rollout.sampler import SamplingParams, sample


def _reference(q, k, v, bias, kp, vp, pbias, group, scale):
    """Plain attention of each row over its own copy of its prompt followed by its response columns."""
    keys = torch.cat([kp[group], k], dim=2)  # (B, kv, W + T, D)
    values = torch.cat([vp[group], v], dim=2)
    mask = torch.cat([pbias[group], bias], dim=1)[:, None, None, :]
    out = F.scaled_dot_product_attention(q[:, :, None], keys, values, attn_mask=mask, scale=scale,
                                         enable_gqa=q.shape[1] != k.shape[1])
    return out[:, :, 0]


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_attention_equals_per_row_copies_with_padding_gqa_and_dropped_rows(kv_heads):
    g = torch.Generator().manual_seed(0)
    u, n, h, d, w, t = 3, 4, 4, 8, 6, 5
    kp, vp = torch.randn(u, kv_heads, w, d, generator=g), torch.randn(u, kv_heads, w, d, generator=g)
    pbias = torch.zeros(u, w)
    pbias[0, :2] = pbias[2, :4] = float("-inf")  # left padding: prompts of 6, 4 and 2 tokens
    rows = torch.tensor([0, 1, 3, 5, 6, 7, 9, 10])  # some samples finished and were dropped; prompt 1 keeps 3
    group, slot = rows // n, rows % n
    b = len(rows)
    q = torch.randn(b, h, d, generator=g)
    k, v = torch.randn(b, kv_heads, t, d, generator=g), torch.randn(b, kv_heads, t, d, generator=g)
    bias = torch.zeros(b, t)
    scale = 1 / math.sqrt(d)
    got = shared_prefix_attention(q, k, v, bias, kp, vp, pbias, group, slot, n=n, scale=scale)
    want = _reference(q, k, v, bias, kp, vp, pbias, group, scale)
    assert got.shape == (b, h, d)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _llama(tokenizer, **shape):
    base = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4)
    return build_shape(tokenizer, seed=0, **{**base, **shape}).eval()


def _eos_bias(model, eos_id: int, mean_length: float) -> None:
    """An lm_head bias on EOS: samples end after ~mean_length tokens, at different steps (rows get dropped)."""
    vocab, hidden = model.lm_head.weight.shape
    head = torch.nn.Linear(hidden, vocab, bias=True)
    head.weight = model.lm_head.weight
    with torch.no_grad():
        head.bias.zero_()
        head.bias[eos_id] = math.log((vocab - 1) / (mean_length - 1))
    model.lm_head = head


@pytest.mark.parametrize("arch,kv_heads", [("llama", 4), ("qwen2", 2)])
def test_sampling_with_a_shared_prefix_equals_plain_decoding(rollout_tokenizer, prompts, monkeypatch, arch, kv_heads):
    tok = rollout_tokenizer
    model = _llama(tok, arch=arch, num_key_value_heads=kv_heads)
    _eos_bias(model, tok.eos_token_id, 12.0)
    calls = []
    real = fast_step.shared_prefix_attention
    monkeypatch.setattr(fast_step, "shared_prefix_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    base = SamplingParams(temperature=1.0, max_new_tokens=24, n=5, seed=7, stop=("Wait",))
    plain = sample(model, tok, prompts, dataclasses.replace(base, share_prefix=False))
    assert not calls
    shared = sample(model, tok, prompts, dataclasses.replace(base, share_prefix=True))
    assert calls, "share_prefix=True did not decode through shared_prefix_attention"
    lengths = shared.response_mask.sum(dim=1)
    assert len(set(lengths.tolist())) > 3, "rows should finish at different steps (the dropped-row path)"
    assert torch.equal(plain.input_ids, shared.input_ids)
    assert shared.finish_reasons == plain.finish_reasons
    torch.testing.assert_close(shared.logprobs, plain.logprobs, atol=1e-5, rtol=0)


def test_auto_shares_whenever_a_prompt_has_several_samples(rollout_tokenizer, prompts, monkeypatch):
    tok = rollout_tokenizer
    model = _llama(tok)
    calls = []
    real = fast_step.shared_prefix_attention
    monkeypatch.setattr(fast_step, "shared_prefix_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    params = SamplingParams(temperature=1.0, max_new_tokens=3, n=1, seed=0)  # share_prefix None: auto
    sample(model, tok, prompts, params)
    assert not calls  # one sample per prompt: nothing to share
    sample(model, tok, prompts, dataclasses.replace(params, n=2))
    assert calls


def test_share_prefix_with_compile_is_refused():
    with pytest.raises(UserError, match="share_prefix"):
        SamplingParams(n=2, share_prefix=True, compile=True)


def test_the_rl_config_switches_it():
    from reasonrl.config import load_config
    from reasonrl.train import rl

    assert rl.sampling_params(load_config(None, []), seed=0).share_prefix is None  # auto: on when n > 1
    assert rl.sampling_params(load_config(None, ["--rollout.share_prefix=false"]), seed=0).share_prefix is False
    # auto under compile: off, not an error
    assert rl.sampling_params(load_config(None, ["--rollout.compile=true"]), seed=0).compile
