"""build_optimizer on a tiny Hugging Face Llama: coverage, per-group lr and weight decay, LambdaLR, training."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from reasonrl.config import OptimConfig
from reasonrl.errors import UserError
from reasonrl.optim import Dion, Muon, build_optimizer


def _model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4))  # fmt: skip


@pytest.mark.parametrize("name,cls", [("adamw", torch.optim.AdamW), ("muon", Muon), ("dion", Dion)])
def test_groups_cover_every_parameter_once(name, cls):
    model = _model()
    cfg = OptimConfig(name=name, lr=0.02, scalar_lr=0.003, weight_decay=0.1)
    opt = build_optimizer(model, cfg)
    assert type(opt) is cls
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    for g in opt.param_groups:
        one_d = all(p.ndim == 1 for p in g["params"])
        assert g["weight_decay"] == (0.0 if one_d else 0.1)
        if name == "adamw":
            assert g["lr"] == 0.02
        else:
            matrix = g["algorithm"] == name
            assert g["lr"] == (0.02 if matrix else 0.003)
            assert matrix == (len(g["params"]) == 14)  # q, k, v, o, gate, up, down in 2 layers
            if not matrix:
                assert g["algorithm"] == "adamw"


def test_lambda_lr_scales_every_group():
    opt = build_optimizer(_model(), OptimConfig(name="dion", lr=0.02, scalar_lr=0.004))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** (s + 1))
    assert sorted(g["lr"] for g in opt.param_groups) == [0.002, 0.002, 0.01]  # factor 0.5 at step 0
    opt.step()
    sched.step()
    assert sorted(g["lr"] for g in opt.param_groups) == [0.001, 0.001, 0.005]


@pytest.mark.parametrize("name", ["adamw", "muon", "dion"])
def test_training_steps_reduce_loss(name):
    model = _model()
    cfg = OptimConfig(name=name, lr=0.02 if name != "adamw" else 0.01, scalar_lr=0.01, rank_fraction=0.5,
                      state_dtype="bf16" if name == "dion" else "fp32")  # fmt: skip
    opt = build_optimizer(model, cfg)
    tokens = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = []
    for _ in range(8):
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.3, losses  # memorising one batch
    for n, p in model.named_parameters():
        assert not torch.equal(p, start[n]), n
    if name == "dion":
        st = opt.state[model.model.layers[0].self_attn.q_proj.weight]
        assert st["momentum"].dtype == torch.bfloat16 and st["Q"].shape == (32, 16)


def test_bad_config_values():
    with pytest.raises(UserError, match="optim.rank_fraction"):
        build_optimizer(_model(), OptimConfig(name="dion", rank_fraction=0.0))
    with pytest.raises(UserError, match="optim.mu"):
        build_optimizer(_model(), OptimConfig(name="muon", mu=1.0))
