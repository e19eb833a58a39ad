"""LoRA (`model.lora_r`, reasonrl/model/lora.py): only adapters train and reach the optimizers, the PPO critic shares
the policy's frozen base, the RL reference is the policy with its adapters off (no copy), the vLLM reload's merged
weights are the adapter model's, and the other commands read an adapter directory as its merged model."""

from __future__ import annotations

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.model import lora
from reasonrl.model.activation_ckpt import checkpointing_layers
from reasonrl.model.logprobs import sequence_logprobs
from reasonrl.model.setup import prepare_for_training
from reasonrl.model.tiny import load_model
from reasonrl.model.value import build_critic
from reasonrl.optim import build_optimizer
from reasonrl.train import fsdp, rl

BLOCK_LINEARS = 2 * 7  # micro: 2 blocks x (q, k, v, o, gate, up, down)


@pytest.fixture(scope="module")
def base_dir(micro_model_dir):
    """A saved micro model: the frozen base the adapters go over."""
    return micro_model_dir


def lora_config(base_dir, *extra):
    return load_config(None, [f"--model.path={base_dir}", "--model.lora_r=4", "--model.lora_alpha=8", *extra])


def lora_policy(base_dir, cfg, seed: int = 0):
    """The base with adapters; B is 0 at the start (the adapter model is the base), so it is given weight."""
    model, tokenizer = load_model(base_dir)
    prepare_for_training(model, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval(), tokenizer


def token_batch(n: int = 6, width: int = 12, prompt_len: int = 5) -> rl.Batch:
    """Rows in groups of 3 sharing a prompt (the first `prompt_len` columns), the first row left-padded by 1."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 200, (n, width), generator=g)
    ids[:, :prompt_len] = ids[::3, :prompt_len].repeat_interleave(3, dim=0)
    am = torch.ones(n, width, dtype=torch.long)
    am[:3, 0] = 0
    mask = torch.zeros(n, width, dtype=torch.bool)
    mask[:, prompt_len:] = True
    return rl.Batch(input_ids=ids, attention_mask=am, mask=mask, old_logp=torch.zeros(n, width),
                    scores=torch.zeros(n), correct=torch.zeros(n, dtype=torch.bool), lengths=mask.sum(1),
                    prompt_len=prompt_len)


def test_only_adapters_train_and_reach_the_optimizer_and_the_critic_shares_the_base(base_dir):
    cfg = lora_config(base_dir, "--model.gradient_checkpointing=true")
    policy, _ = lora_policy(base_dir, cfg)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * BLOCK_LINEARS and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert sum(p.numel() for p in policy.parameters() if p.requires_grad) < 0.2 * sum(
        p.numel() for p in policy.parameters())
    optimizer = build_optimizer(policy, cfg.optim)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in policy.parameters() if p.requires_grad}

    critic = build_critic(policy, cfg, None)
    critic_trainable = [n for n, p in critic.named_parameters() if p.requires_grad]
    assert sorted(n for n in critic_trainable if ".modules_to_save." in n) == [
        "score.modules_to_save.default.bias", "score.modules_to_save.default.weight"]
    assert len(critic_trainable) == 2 * BLOCK_LINEARS + 2  # its own adapters and the value head
    assert not {id(p) for p in critic.parameters() if p.requires_grad} & {id(p) for p in policy.parameters()}
    # the critic's frozen backbone is the policy's base itself: one copy for policy, reference and critic
    ours, theirs = lora.base_parameters(critic.base_model), lora.base_parameters(policy.base_model)
    assert set(ours) == set(theirs) and len(ours) > 10
    assert all(ours[k] is theirs[k] for k in ours)
    # gradient checkpointing reached both (model.gradient_checkpointing)
    assert len(checkpointing_layers(policy)) == len(checkpointing_layers(critic)) == 2


def test_reference_is_the_policy_with_adapters_off(base_dir):
    cfg = lora_config(base_dir, "--rl.kl_coef=0.1")
    policy, _ = lora_policy(base_dir, cfg)
    batch = token_batch()
    cpu = torch.device("cpu")
    assert fsdp.reference_model(policy, cfg, cpu, resumed=False) is policy  # no second copy
    assert fsdp.reference_model(policy, cfg, cpu, resumed=True) is policy  # a resumed run's base is the initial one
    before = sequence_logprobs(policy, batch.input_ids, batch.attention_mask).detach()
    got = rl.reference_logprobs(fsdp.reference_model(policy, cfg, cpu, resumed=False), batch, cfg)
    base, _ = load_model(base_dir)  # the frozen base, read from disk
    with torch.no_grad():
        want = sequence_logprobs(base.eval(), batch.input_ids, batch.attention_mask, prompt_len=batch.prompt_len)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert (before - want).abs().max() > 1e-2  # the adapters do move the policy away from it
    after = sequence_logprobs(policy, batch.input_ids, batch.attention_mask).detach()
    assert torch.equal(before, after)  # and they are back on
    full = base  # a full fine-tune's reference: a frozen copy
    ref = fsdp.reference_model(full, cfg, cpu, resumed=False)
    assert ref is not full and not any(p.requires_grad for p in ref.parameters())


def test_merged_state_dict_is_the_plain_model_the_vllm_reload_gets(base_dir):
    from reasonrl.rollout import vllm_backend

    policy, _ = lora_policy(base_dir, lora_config(base_dir))
    frozen = {k: v.clone() for k, v in lora.base_parameters(policy).items()}
    batch = token_batch()
    merged = lora.merged_state_dict(policy)
    plain, _ = load_model(base_dir)
    assert set(merged) == set(plain.state_dict())  # plain names only: no base_layer / lora_A / lora_B
    plain.load_state_dict(merged)
    with torch.no_grad():
        want = sequence_logprobs(policy, batch.input_ids, batch.attention_mask)
        got = sequence_logprobs(plain.eval(), batch.input_ids, batch.attention_mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert all(torch.equal(frozen[k], v) for k, v in lora.base_parameters(policy).items())  # base not merged into

    class FakeEngine:  # what `load_policy_weights` hands vLLM's in-place reload
        def collective_rpc(self, method, kwargs):
            self.weights = dict(kwargs["weights_iterator"])

        def reset_prefix_cache(self):
            pass

    engine = FakeEngine()
    vllm_backend.load_policy_weights(engine, policy)
    assert set(engine.weights) == set(merged)
    assert all(torch.equal(engine.weights[k], merged[k]) for k in merged)


def test_adapter_directory_loads_as_its_merged_model_everywhere(base_dir, tmp_path):
    from peft import PeftModel

    from reasonrl.model.value import load_value_model, token_values
    from reasonrl.reflection.probe import load_checkpoint, parse_checkpoints

    cfg = lora_config(base_dir)
    policy, tokenizer = lora_policy(base_dir, cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "step_0000001"
    lora.save_model(policy, ckpt)
    tokenizer.save_pretrained(ckpt)
    (ckpt / "meta.json").write_text('{"step": 1, "params": 10, "tokens_seen": 10}')
    assert sorted(p.name for p in ckpt.glob("adapter*")) == ["adapter_config.json", "adapter_model.safetensors"]
    assert not (ckpt / "model.safetensors").exists()  # the adapter alone: the base stays at model.path
    batch = token_batch()
    with torch.no_grad():
        want = sequence_logprobs(policy, batch.input_ids, batch.attention_mask)
        # peft's own loader on the saved adapter (unmerged): the format is peft's
        unmerged = PeftModel.from_pretrained(load_model(base_dir)[0], ckpt).eval()
        torch.testing.assert_close(sequence_logprobs(unmerged, batch.input_ids, batch.attention_mask), want,
                                   atol=1e-5, rtol=0)
        merged, _ = load_model(ckpt)  # eval --model, retro-search --model, judges
        assert not lora.has_lora(merged)
        torch.testing.assert_close(sequence_logprobs(merged.eval(), batch.input_ids, batch.attention_mask), want,
                                   atol=1e-5, rtol=0)
        assert parse_checkpoints(str(tmp_path / "run")) == [ckpt]  # reflection --checkpoints RUN
        probed, _ = load_checkpoint(ckpt)
        torch.testing.assert_close(sequence_logprobs(probed, batch.input_ids, batch.attention_mask), want,
                                   atol=1e-5, rtol=0)
        # a LoRA critic (adapters + trained value head) as rl.critic_path
        critic = build_critic(policy, cfg, None)
        for p in critic.parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.1)
        lora.save_model(critic, tmp_path / "critic")
        loaded = load_value_model(tmp_path / "critic")
        torch.testing.assert_close(token_values(loaded.eval(), batch.input_ids, batch.attention_mask),
                                   token_values(critic.eval(), batch.input_ids, batch.attention_mask), atol=1e-5,
                                   rtol=0)


def test_an_adapter_on_an_adapter_loads_through_the_chain(base_dir, tmp_path):
    """SFT with LoRA, then RL with LoRA from the SFT adapter: the RL adapter's base is the SFT adapter directory."""
    sft_policy, tokenizer = lora_policy(base_dir, lora_config(base_dir), seed=1)
    lora.save_model(sft_policy, tmp_path / "sft")
    tokenizer.save_pretrained(tmp_path / "sft")
    rl_cfg = lora_config(tmp_path / "sft")
    rl_policy, _ = load_model(tmp_path / "sft")  # the SFT model, merged: the RL base and reference
    prepare_for_training(rl_policy, rl_cfg)
    with torch.no_grad():
        for name, p in rl_policy.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn_like(p) * 0.2)
    lora.save_model(rl_policy, tmp_path / "rl")
    batch = token_batch()
    with torch.no_grad():
        want = sequence_logprobs(rl_policy.eval(), batch.input_ids, batch.attention_mask)
        got = sequence_logprobs(load_model(tmp_path / "rl")[0].eval(), batch.input_ids, batch.attention_mask)
        sft_only = sequence_logprobs(load_model(tmp_path / "sft")[0].eval(), batch.input_ids, batch.attention_mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got - sft_only).abs().max() > 1e-2
