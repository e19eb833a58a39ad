"""The activation term of benchmarks/memory_formula.py (which projects 0.5B-32B models) against what autograd really
keeps: every tensor saved for the backward pass of HF Llama blocks, counted with saved-tensor hooks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from memory_formula import QWEN25, Shape, act_per_token, step_memory  # noqa: E402


def saved_elements_per_token(s: Shape, *, lora_r: int = 0, checkpointing: bool = False, rows: int = 2,
                             width: int = 12) -> float:
    """fp32 elements in the distinct storages autograd saves in a forward pass (parameters excluded), per token."""
    from reasonrl.config import load_config
    from reasonrl.model import lora

    config = LlamaConfig(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                         num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    if lora_r:
        lora.add_lora(model, load_config(None, [f"--model.lora_r={lora_r}", "--model.path=x"]).model, base="x")
    if checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
        model.train()  # the micro config has no dropout
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    sizes: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        sizes[storage.data_ptr()] = max(sizes.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    ids = torch.randint(0, s.vocab, (rows, width), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, use_cache=False)
    return sum(n for ptr, n in sizes.items() if ptr not in params) / 4 / (rows * width)


@pytest.mark.parametrize("shape", [dict(hidden=32, intermediate=64, layers=2, heads=4, kv_heads=4, vocab=64),
                                   dict(hidden=64, intermediate=160, layers=3, heads=8, kv_heads=2, vocab=96)])
def test_activation_formula_is_what_autograd_keeps(shape):
    s = Shape(**shape)
    assert saved_elements_per_token(s) == act_per_token(s, checkpointing=False)
    assert saved_elements_per_token(s, lora_r=4) == act_per_token(s, checkpointing=False, lora_r=4)
    # checkpointed: the forward keeps each block's input only; one block's set comes back during the backward pass.
    # The rotary tables (head_dim per token) are then the blocks' inputs, held by reference, not saved: the hooks
    # miss them, the formula counts them
    blocks = act_per_token(s, checkpointing=False) - act_per_token(Shape(**{**shape, "layers": 0}),
                                                                   checkpointing=False)
    assert blocks % s.layers == 0
    forward_part = act_per_token(s, checkpointing=True) - blocks // s.layers
    assert saved_elements_per_token(s, checkpointing=True) + s.hidden // s.heads == forward_part


def test_qwen25_shapes_give_the_published_sizes():
    sizes = {name: Shape(**shape).params() / 1e9 for name, shape in QWEN25.items()}
    assert sizes == pytest.approx({"0.5B": 0.494, "1.5B": 1.54, "7B": 7.6, "32B": 32.8}, rel=0.02)


def test_fsdp2_with_lora_shards_the_adapters_and_gives_the_critic_its_own_base_shard():
    """On one process the LoRA critic's backbone is the policy's base (nothing of its own but adapters and head);
    sharded over 2, every model owns its shards (train/fsdp.py), so the critic holds half the base besides half of
    what it held. A "gathered" rollout adds the whole policy (base + adapters) while it samples."""
    s = Shape(hidden=32, intermediate=64, layers=2, heads=4, kv_heads=4, vocab=64)
    common = dict(algo="ppo", lora_r=4, tokens=10, rollout_rows=2, rollout_len=5)
    one, two = step_memory(s, shards=1, **common), step_memory(s, shards=2, **common)
    trainable = s.lora_params(4)
    assert one["critic"] == 4 * (trainable + 33) + 8 * (trainable + 33) + 4 * (trainable + 33)  # weights, Adam, grads
    assert two["critic"] == (4 * s.params() + one["critic"]) / 2
    assert two["weights"] == one["weights"] / 2 == 4 * (s.params() + trainable) / 2
    assert one["decoding_copy"] == two["decoding_copy"] == 0  # lockstep, or one process
    gathered = step_memory(s, shards=2, gathered_rollout=True, **common)
    assert gathered["decoding_copy"] == 4 * (s.params() + trainable)
