"""Gradient checkpointing (`model.gradient_checkpointing`, reasonrl/model/activation_ckpt.py): the same gradients as
without, within 1e-6, for the policy and the critic in the RL update's mode (eval, blocks armed) and for SFT (train
mode), with and without LoRA; and the blocks really are recomputed in the backward pass."""

from __future__ import annotations

import copy

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.model.activation_ckpt import checkpointing_layers, enable_checkpointing, eval_with_checkpointing
from reasonrl.model.logprobs import sequence_logprobs
from reasonrl.model.tiny import build_model
from reasonrl.model.value import token_values, value_model_from_policy
from reasonrl.train.sft import response_nll_sum


def rows(n: int = 6, width: int = 14, prompt_len: int = 5):
    """Rows in groups of 3 sharing a left-padded prompt (the shared-prompt pass applies without checkpointing)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 200, (n, width), generator=g)
    ids[:, :prompt_len] = ids[::3, :prompt_len].repeat_interleave(3, dim=0)
    am = torch.ones(n, width, dtype=torch.long)
    am[:3, :2] = 0
    weights = torch.randn(n, width, generator=g)
    weights[:, :prompt_len] = 0.0  # response tokens only, as the RL losses' masks (prompt positions may hold 0)
    return ids, am, weights, prompt_len


def policy_loss(model, ids, am, weights, prompt_len):
    eval_with_checkpointing(model)  # the RL update's mode
    return (sequence_logprobs(model, ids, am, prompt_len=prompt_len) * weights).sum()


def critic_loss(model, ids, am, weights, prompt_len):
    eval_with_checkpointing(model)
    return (token_values(model, ids, am, prompt_len=prompt_len) * weights).sum()


def sft_loss(model, ids, am, weights, prompt_len):
    model.train()  # SFT's mode (the micro model has no dropout); one pass per row whatever `prompt_len` says
    loss_mask = weights != 0  # the response tokens
    return response_nll_sum(model, {"input_ids": ids, "attention_mask": am, "loss_mask": loss_mask})


def grads_and_recomputes(model, loss_fn, *, share: bool = True) -> tuple[dict[str, torch.Tensor], int]:
    """Gradients of the trainable parameters, and how many attention modules ran during the backward pass (a
    recomputed block runs its attention again there)."""
    calls = [0]
    hooks = [m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
             for name, m in model.named_modules() if name.endswith("self_attn")]
    model.zero_grad(set_to_none=True)
    ids, am, weights, prompt_len = rows()
    loss = loss_fn(model, ids, am, weights, prompt_len if share else 0)
    forward_calls = calls[0]
    loss.backward()
    for h in hooks:
        h.remove()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}, calls[0] - forward_calls


@pytest.mark.parametrize("lora_r", [0, 4])
@pytest.mark.parametrize("which", ["policy", "critic", "sft"])
def test_checkpointed_gradients_equal_the_plain_ones(world_tokenizer, tmp_path, which, lora_r):
    from reasonrl.model import lora

    policy = build_model("micro", world_tokenizer)
    model = value_model_from_policy(policy) if which == "critic" else policy
    with torch.no_grad():  # a zero value head would give the critic's backbone no gradient
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.02)
    if lora_r:
        torch.manual_seed(0)  # peft draws A from the global generator: the same adapters whatever ran before
        cfg = load_config(None, [f"--model.lora_r={lora_r}", f"--model.path={tmp_path}"])
        lora.add_lora(model, cfg.model, base=tmp_path, modules_to_save=["score"] if which == "critic" else None)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".lora_B." in name:
                    p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.1)
    loss_fn = {"policy": policy_loss, "critic": critic_loss, "sft": sft_loss}[which]
    shared, _ = grads_and_recomputes(model, loss_fn)  # the default: rows sharing a prompt share its pass
    plain, plain_recomputed = grads_and_recomputes(model, loss_fn, share=False)  # one pass per row
    checkpointed = copy.deepcopy(model)
    enable_checkpointing(checkpointed)
    assert len(checkpointing_layers(checkpointed)) == 2
    got, recomputed = grads_and_recomputes(checkpointed, loss_fn)
    assert plain_recomputed == 0 and recomputed == 2  # each of the 2 blocks ran again in the backward pass
    assert set(got) == set(plain) and len(got) >= (2 * 14 if lora_r else 10)
    assert max(g.abs().max().item() for g in plain.values()) > 1e-3
    for name in plain:
        def named(m: str, name: str = name) -> str:
            return f"{name}: {m}"

        torch.testing.assert_close(got[name], plain[name], atol=1e-6, rtol=0, msg=named)
        # a checkpointed pass cannot keep a shared prompt's cache (the module docstring): it takes the plain path,
        # whose float rounding differs from the shared one's as it does without checkpointing (up to ~1.5e-6 seen)
        torch.testing.assert_close(got[name], shared[name], atol=1e-5, rtol=1e-5, msg=named)
