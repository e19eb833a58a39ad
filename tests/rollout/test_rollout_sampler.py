"""reasonrl.rollout.sample: layout, log-probs vs teacher forcing, greedy, top-k, seeds, groups, model families."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, Qwen2Config

from reasonrl.model.logprobs import sequence_logprobs
from reasonrl.model.tiny import build_model
from reasonrl.rollout.cache import PreallocatedLayer, make_cache
from reasonrl.rollout.fast_step import supports_fast_step
from reasonrl.rollout.processors import truncate
from reasonrl.rollout.sampler import Rollout, SamplingParams, sample
from reasonrl.tasks import synthetic


def _response(r: Rollout, row: int) -> list[int]:
    return r.input_ids[row, r.prompt_len : r.prompt_len + int(r.response_lengths[row])].tolist()


def test_layout(rollout_tokenizer, random_model, prompts):
    tok = rollout_tokenizer
    r = sample(random_model, tok, prompts, SamplingParams(max_new_tokens=12, n=2, seed=0), prefixes=["", "7 +", ""])
    n_rows = 6
    prompt_ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
    assert r.prompt_len == max(len(p) for p in prompt_ids)
    assert r.input_ids.shape == r.attention_mask.shape == r.response_mask.shape == r.logprobs.shape
    assert r.input_ids.shape == (n_rows, r.prompt_len + int(r.response_lengths.max()))
    assert r.response_mask.dtype == torch.bool and r.input_ids.dtype == torch.long
    assert r.prompt_index.tolist() == [0, 0, 1, 1, 2, 2]
    prefix_len = len(tok.encode("7 +", add_special_tokens=False))
    for row in range(n_rows):
        prompt = prompt_ids[row // 2]
        left = r.prompt_len - len(prompt)
        assert r.input_ids[row, left : r.prompt_len].tolist() == prompt  # left-padded prompt
        assert r.input_ids[row, :left].eq(tok.pad_token_id).all()
        end = r.prompt_len + int(r.response_lengths[row])
        assert r.attention_mask[row].tolist() == [0] * left + [1] * (end - left) + [0] * (r.input_ids.shape[1] - end)
        assert r.input_ids[row, end:].eq(tok.pad_token_id).all()
        assert not r.response_mask[row, : r.prompt_len].any() and not r.response_mask[row, end:].any()
        n_prefix = prefix_len if row // 2 == 1 else 0
        assert not r.response_mask[row, r.prompt_len : r.prompt_len + n_prefix].any()  # prefix is forced
        assert r.response_mask[row, r.prompt_len + n_prefix : end].all()
        assert r.logprobs[row][~r.response_mask[row]].eq(0).all()
        assert r.response_texts[row] == tok.decode(_response(r, row), skip_special_tokens=True)
    assert r.response_texts[2].startswith("7 +") and r.response_texts[3].startswith("7 +")
    assert set(r.finish_reasons) <= {"eos", "length"} and r.num_tool_calls.eq(0).all()


def test_logprobs_equal_teacher_forcing(rollout_tokenizer, random_model, prompts):
    params = SamplingParams(temperature=0.7, top_p=0.9, top_k=40, max_new_tokens=16, n=3, seed=1)
    r = sample(random_model, rollout_tokenizer, prompts, params, prefixes=["Start with", "", ""])
    with torch.no_grad():
        logp = sequence_logprobs(random_model, r.input_ids, r.attention_mask, temperature=0.7)
    assert r.response_mask.sum() > 30
    assert (logp - r.logprobs)[r.response_mask].abs().max() < 1e-4
    # the truncated distribution puts at least as much mass on the sampled token as the plain one
    assert (r.sampling_logprobs - r.logprobs)[r.response_mask].min() > -1e-5
    assert (r.sampling_logprobs - r.logprobs)[r.response_mask].max() > 0.01


def test_sampling_logprobs_equal_truncated_teacher_forcing(rollout_tokenizer, random_model, prompts):
    r = sample(random_model, rollout_tokenizer, prompts, SamplingParams(temperature=1.3, top_k=5, max_new_tokens=10))
    with torch.no_grad():
        pos = (r.attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits = random_model(input_ids=r.input_ids, attention_mask=r.attention_mask, position_ids=pos).logits
    scores = truncate(logits[:, :-1].reshape(-1, logits.shape[-1]) / 1.3, top_k=5).view(*logits[:, :-1].shape)
    expected = torch.log_softmax(scores, -1).gather(-1, r.input_ids[:, 1:, None])[..., 0]
    mask = r.response_mask[:, 1:]
    assert (expected - r.sampling_logprobs[:, 1:])[mask].abs().max() < 1e-4


def _argmax_decode(model, ids: list[int], steps: int) -> list[int]:
    out = list(ids)
    with torch.no_grad():
        for _ in range(steps):
            out.append(int(model(input_ids=torch.tensor([out])).logits[0, -1].argmax()))
    return out[len(ids) :]


def test_greedy_equals_argmax_decoding_and_top_k_1(rollout_tokenizer, random_model, prompts):
    params = SamplingParams(temperature=0.0, max_new_tokens=10, ignore_eos=True)
    r = sample(random_model, rollout_tokenizer, prompts, params)
    for row, p in enumerate(prompts):
        ids = rollout_tokenizer.encode(p, add_special_tokens=False)
        assert _response(r, row) == _argmax_decode(random_model, ids, 10)
    topk1 = sample(random_model, rollout_tokenizer, prompts, SamplingParams(top_k=1, max_new_tokens=10,
                                                                              ignore_eos=True, seed=7))
    assert torch.equal(topk1.input_ids, r.input_ids)


def test_seeded_and_groups_contiguous(rollout_tokenizer, random_model, prompts):
    params = SamplingParams(max_new_tokens=12, n=4, seed=11)
    a = sample(random_model, rollout_tokenizer, prompts[:2], params)
    b = sample(random_model, rollout_tokenizer, prompts[:2], params)
    c = sample(random_model, rollout_tokenizer, prompts[:2], SamplingParams(max_new_tokens=12, n=4, seed=12))
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.input_ids, c.input_ids)
    assert a.prompt_index.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert len({tuple(_response(a, i)) for i in range(4)}) > 1, "samples of one prompt should differ"
    state = torch.random.get_rng_state()
    sample(random_model, rollout_tokenizer, prompts[:1], params)
    assert torch.equal(state, torch.random.get_rng_state()), "the global RNG must not be touched"


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_fast_step_equals_model_forward(rollout_tokenizer, prompts, arch):
    model = build_model("micro", rollout_tokenizer, arch=arch, seed=2).eval()
    assert supports_fast_step(model, make_cache(model, 8))
    kwargs = dict(temperature=0.9, max_new_tokens=14, n=2, seed=3)
    fast = sample(model, rollout_tokenizer, prompts, SamplingParams(fast_step=True, **kwargs), prefixes=["", "A", ""])
    slow = sample(model, rollout_tokenizer, prompts, SamplingParams(fast_step=False, **kwargs), prefixes=["", "A", ""])
    assert torch.equal(fast.input_ids, slow.input_ids)
    assert (fast.logprobs - slow.logprobs).abs().max() < 1e-5


class _ScaledLinear(torch.nn.Linear):
    """Stands for an adapter (LoRA) or a quantised layer: a Linear subclass that computes something else."""

    def forward(self, x):
        return super().forward(x) * 1.5


def test_wrapped_layers_take_the_generic_path(rollout_tokenizer, prompts):
    model = build_model("micro", rollout_tokenizer, seed=6).eval()
    old = model.model.layers[0].self_attn.q_proj
    wrapped = _ScaledLinear(old.in_features, old.out_features, bias=False)
    wrapped.weight = old.weight
    model.model.layers[0].self_attn.q_proj = wrapped
    assert not supports_fast_step(model, make_cache(model, 8))
    r = sample(model, rollout_tokenizer, prompts, SamplingParams(max_new_tokens=10, seed=1))
    with torch.no_grad():
        logp = sequence_logprobs(model, r.input_ids, r.attention_mask)
    assert (logp - r.logprobs)[r.response_mask].abs().max() < 1e-4


def _family_models(tokenizer):
    common = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    gpt2 = AutoModelForCausalLM.from_config(GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **common))
    gqa = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, **common)
    sliding = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=4, use_sliding_window=True, sliding_window=8, max_window_layers=0,
                          **common)
    return {"gpt2": gpt2, "qwen2-gqa": AutoModelForCausalLM.from_config(gqa),
            "qwen2-sliding": AutoModelForCausalLM.from_config(sliding)}


def test_other_model_families_match_teacher_forcing(rollout_tokenizer, prompts):
    models = _family_models(rollout_tokenizer)
    caches = {name: make_cache(m, 8) for name, m in models.items()}
    assert all(isinstance(layer, PreallocatedLayer) for layer in caches["gpt2"].layers)
    assert not any(isinstance(layer, PreallocatedLayer) for layer in caches["qwen2-sliding"].layers)
    for name, model in models.items():
        model.eval()
        r = sample(model, rollout_tokenizer, prompts, SamplingParams(max_new_tokens=20, n=2, seed=4),
                   prefixes=["", "Start", ""])
        with torch.no_grad():
            logp = sequence_logprobs(model, r.input_ids, r.attention_mask)
        assert int(r.response_lengths.max()) > 12, name  # past the sliding window of 8
        assert (logp - r.logprobs)[r.response_mask].abs().max() < 1e-4, name


def test_model_mode_restored_and_rollout_to(rollout_tokenizer, prompts):
    model = build_model("micro", rollout_tokenizer, seed=5)
    model.train()
    r = sample(model, rollout_tokenizer, prompts[:1], SamplingParams(max_new_tokens=4))
    assert model.training
    moved = r.to("cpu")
    assert isinstance(moved, Rollout) and moved.prompt_len == r.prompt_len and torch.equal(moved.logprobs, r.logprobs)


@pytest.mark.parametrize("fast_step", [True, False])
def test_logprobs_equal_teacher_forcing_after_finished_rows_are_dropped(rollout_tokenizer, scripted_model, scripts,
                                                                       fast_step):
    """The "short" script ends after a few tokens, so its rows are dropped from the batch (cache, mask and position
    ids sliced) while rows of longer prompts keep decoding: their positions must follow them. A scrambled position
    id of a kept row shifts its log-probs by ~1e-3; fp32 agreement is ~1e-6."""
    tok = rollout_tokenizer
    long_prompt = scripts.chat(tok, synthetic.generate(1, seed=5, difficulty=3)[0]["prompt"])
    prompts = [scripts.chat(tok, "short"), scripts.chat(tok, "calc"), long_prompt, scripts.chat(tok, "stop")]
    lengths = {len(tok.encode(p, add_special_tokens=False)) for p in prompts[1:]}
    assert len(lengths) >= 2  # the rows that stay have different prompt lengths
    r = sample(scripted_model, tok, prompts, SamplingParams(temperature=0.8, max_new_tokens=24, n=2, seed=0,
                                                            fast_step=fast_step))
    ends = r.response_lengths.tolist()
    assert max(ends[:2]) < 8 and max(ends[2:]) > 12, ends  # "short" finished early, others went on
    with torch.no_grad():
        logp = sequence_logprobs(scripted_model, r.input_ids, r.attention_mask, temperature=0.8)
    assert (logp - r.logprobs)[r.response_mask].abs().max() < 1e-5
