"""One decode step (one new token per row) of a Llama-style decoder, written as plain tensor code.

Why: with small models much of the per-step cost of `model.forward` is Python and operator dispatch (module
calls, mask construction, rotary recomputation), not arithmetic; replacing it with this step took the `tiny`
benchmark (64 x 128 tokens) from 1.51 s to 1.19 s of CPU time, and 0.57 s to 0.38 s at batch 8
(docs/benchmarks_rollout.md). This step does the same math with fewer operators, reading the model's live
weights (nothing is copied, so a trainer's updates are seen at once) and writing into the sampler's
preallocated KV cache.

It covers `LlamaForCausalLM` and `Qwen2ForCausalLM` (exact classes: wrapped or patched models take the generic
path) with SiLU MLPs, full attention and a rotary embedding that depends on the position only; the prefill and
every other model use `model.forward`. tests/rollout check that it reproduces `model.forward` to float
precision, and the sampler can be told not to use it (`SamplingParams.fast_step=False`).

    x = embed[token]
    per layer:  h = rmsnorm(x);  q, k, v = h Wq + bq, h Wk + bk, h Wv + bv;  rotate q, k by position;
                append k, v to the cache;  x += attention(q, K, V) Wo;  x += (silu(rmsnorm(x) Wg) * (rmsnorm(x) Wu)) Wd
    logits = rmsnorm(x) W_lm
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import Cache, PreTrainedModel

from reasonrl.rollout.cache import PreallocatedLayer

SUPPORTED_CLASSES = ("LlamaForCausalLM", "Qwen2ForCausalLM")
POSITION_ONLY_ROPE = ("default", "linear", "llama3", "yarn")


def supports_fast_step(model: PreTrainedModel, cache: Cache) -> bool:
    """True when `DecodeStep` computes exactly what `model.forward` does for this model and cache."""
    if type(model).__name__ not in SUPPORTED_CLASSES:
        return False
    config = model.config
    rope_type = model.model.rotary_emb.rope_type
    return (
        config.hidden_act == "silu"
        and rope_type in POSITION_ONLY_ROPE
        and all(isinstance(layer, PreallocatedLayer) for layer in cache.layers)
        and len(cache.layers) == len(model.model.layers)
        and _plain_modules(model)
    )


def _plain_modules(model: PreTrainedModel) -> bool:
    """Every projection a plain `nn.Linear` and the embedding a plain `nn.Embedding`: adapters (LoRA) and
    quantised layers subclass or replace them, and their extra computation would be skipped here."""
    linears = [model.lm_head]
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        linears += [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj]
    return type(model.model.embed_tokens) is torch.nn.Embedding and all(type(m) is torch.nn.Linear for m in linears)


def rms_norm(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
    """`LlamaRMSNorm` / `Qwen2RMSNorm`: normalise in float32, scale in the input dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, `x (B, heads, D)` with `cos, sin (B, 1, D)`: x cos + rotate_half(x) sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class DecodeStep:
    """`step(tokens (B,), mask (B, S), positions (B,)) -> logits (B, V)`, S = filled cache columns.

    `mask` is additive (0 = attend, -inf = padding), from `additive_mask` once per run, so attention does not
    convert a boolean mask at every layer of every step.
    """

    def __init__(self, model: PreTrainedModel, cache: Cache, max_position: int):
        self.model, self.cache = model, cache
        config = model.config
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        embed = model.model.embed_tokens.weight
        positions = torch.arange(max_position, device=embed.device)[None]
        cos, sin = model.model.rotary_emb(embed[:1], position_ids=positions)  # (1, P, D), in the model dtype
        self.cos, self.sin = cos[0], sin[0]

    def additive_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """`(B, S)` bool (True = real token) -> `(B, S)` in the model dtype, 0 on real tokens and -inf on padding."""
        bias = torch.zeros(attention_mask.shape, dtype=self.cos.dtype, device=attention_mask.device)
        return bias.masked_fill_(~attention_mask, float("-inf"))

    def __call__(self, tokens: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        base = self.model.model
        x = F.embedding(tokens, base.embed_tokens.weight)  # (B, d)
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # (B, 1, D)
        mask = mask[:, None, None, :]  # (B, 1, 1, S)
        for layer, kv in zip(base.layers, self.cache.layers, strict=True):
            x = x + self._attention(layer.self_attn, rms_norm(x, layer.input_layernorm), kv, cos, sin, mask)
            h = rms_norm(x, layer.post_attention_layernorm)
            mlp = layer.mlp
            gate = F.linear(h, mlp.gate_proj.weight, mlp.gate_proj.bias)
            up = F.linear(h, mlp.up_proj.weight, mlp.up_proj.bias)
            x = x + F.linear(F.silu(gate) * up, mlp.down_proj.weight, mlp.down_proj.bias)
        x = rms_norm(x, base.norm)
        head = self.model.lm_head
        return F.linear(x, head.weight, head.bias)

    def _attention(self, attn, h, kv: PreallocatedLayer, cos, sin, mask) -> torch.Tensor:
        b = h.shape[0]
        q = F.linear(h, attn.q_proj.weight, attn.q_proj.bias).view(b, self.num_heads, -1)
        k = F.linear(h, attn.k_proj.weight, attn.k_proj.bias).view(b, self.num_kv_heads, -1)
        v = F.linear(h, attn.v_proj.weight, attn.v_proj.bias).view(b, self.num_kv_heads, -1)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        keys, values = kv.update(k[:, :, None], v[:, :, None])  # (B, kv heads, S, D)
        out = F.scaled_dot_product_attention(
            q[:, :, None], keys, values, attn_mask=mask, scale=attn.scaling,
            enable_gqa=self.num_heads != self.num_kv_heads,
        )  # (B, heads, 1, D)
        return F.linear(out.reshape(b, -1), attn.o_proj.weight, attn.o_proj.bias)
