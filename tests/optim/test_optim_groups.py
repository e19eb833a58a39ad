"""The grouping rule on a tiny Hugging Face Llama and on hand-made modules; AdamW / Lion hand values."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from reasonrl.optim.groups import adamw_update, lion_update, split_param_groups


def _tiny_llama(tie: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=tie)  # fmt: skip
    return LlamaForCausalLM(cfg)


@pytest.mark.parametrize("tie", [False, True])
def test_llama_split(tie):
    model = _tiny_llama(tie)
    split = split_param_groups(model)
    names = {role: sorted(n for n, _ in items) for role, items in split.items()}
    projections = ["q_proj", "k_proj", "v_proj", "o_proj"]
    expect_matrix = sorted(
        [f"model.layers.{i}.self_attn.{p}.weight" for i in range(2) for p in projections]
        + [f"model.layers.{i}.mlp.{p}.weight" for i in range(2) for p in ["gate_proj", "up_proj", "down_proj"]]
    )
    assert names["matrix"] == expect_matrix
    assert names["embedding"] == ["model.embed_tokens.weight"]
    assert names["head"] == ([] if tie else ["lm_head.weight"])
    norms = [f"model.layers.{i}.{n}.weight" for i in range(2) for n in ["input_layernorm", "post_attention_layernorm"]]
    assert names["vector"] == sorted([*norms, "model.norm.weight"])
    # every trainable parameter exactly once; the tied head is the embedding and never a matrix
    ids = [id(p) for items in split.values() for _, p in items]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert id(model.lm_head.weight) not in {id(p) for _, p in split["matrix"]}


def test_generic_module_rules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(10, 8)
            self.body = nn.Linear(8, 8)  # weight -> matrix, bias -> vector
            self.pos = nn.Parameter(torch.zeros(4, 8))  # 2-D but not a Linear weight -> vector
            self.value_head = nn.Linear(8, 1)  # one row -> head (AdamW)
            self.lm_head = nn.Linear(8, 10, bias=False)  # named lm_head -> head
            self.frozen = nn.Linear(8, 8)
            self.frozen.requires_grad_(False)

    split = split_param_groups(Net())
    names = {role: sorted(n for n, _ in items) for role, items in split.items()}
    assert names == {
        "matrix": ["body.weight"],
        "embedding": ["tok.weight"],
        "head": ["lm_head.weight", "value_head.weight"],
        "vector": ["body.bias", "pos", "value_head.bias"],
    }


def test_adamw_first_step_hand_values():
    # step 1: m = 0.1 g, v = 0.05 g^2, bias-corrected m / sqrt(v) = g / |g| = sign(g)
    # p = (1 - 0.1 * 0.1) p - 0.1 sign(g) = 0.99 * (1, -2) - 0.1 * (1, -1) = (0.89, -1.88)
    p = torch.tensor([1.0, -2.0])
    g = torch.tensor([0.5, -0.25])
    m, v = torch.zeros(2), torch.zeros(2)
    adamw_update(p, g, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.95, eps=1e-12, weight_decay=0.1)
    torch.testing.assert_close(p, torch.tensor([0.89, -1.88]))
    torch.testing.assert_close(m, torch.tensor([0.05, -0.025]))
    torch.testing.assert_close(v, torch.tensor([0.0125, 0.003125]))  # 0.05 * (0.25, 0.0625)


def test_lion_hand_values():
    # m = (0.2, -0.4); g = (-1, -1): u = sign(0.9 m + 0.1 g) = sign(0.08, -0.46) = (1, -1)
    # p = (1 - 0.1 * 0.5) (1, 1) - 0.1 (1, -1) = (0.85, 1.05); m = 0.99 m + 0.01 g = (0.188, -0.406)
    p = torch.tensor([1.0, 1.0])
    m = torch.tensor([0.2, -0.4])
    lion_update(p, torch.tensor([-1.0, -1.0]), m, lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.5)
    torch.testing.assert_close(p, torch.tensor([0.85, 1.05]))
    torch.testing.assert_close(m, torch.tensor([0.188, -0.406]))


@pytest.mark.parametrize("name", ["muon", "dion"])
def test_muon_and_dion_reject_bad_groups(name):
    from reasonrl.optim import Dion, Muon

    cls = {"muon": Muon, "dion": Dion}[name]
    with pytest.raises(ValueError, match=rf"{cls.__name__}: algorithm '{name}' needs 2-D parameters, got shape \(4,\)"):
        cls([{"params": [torch.nn.Parameter(torch.zeros(4))]}])
    with pytest.raises(ValueError, match=rf"{cls.__name__}: algorithm must be {name}, adamw or lion, got 'sgd'"):
        cls([{"params": [torch.nn.Parameter(torch.zeros(4, 4))], "algorithm": "sgd"}])
    cls([{"params": [torch.nn.Parameter(torch.zeros(4))], "algorithm": "adamw"}])  # 1-D is fine outside the matrix path
