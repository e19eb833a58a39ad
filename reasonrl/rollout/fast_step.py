"""One decode step (one new token per row) of a Llama-style decoder, written as plain tensor code.

Why: with small models much of the per-step cost of `model.forward` is Python and operator dispatch (module
calls, mask construction, rotary recomputation), not arithmetic; replacing it with this step took the `tiny`
benchmark (64 x 128 tokens) from 1.51 s to 1.19 s of CPU time, and 0.57 s to 0.38 s at batch 8
(docs/benchmarks.md). This step does the same math with fewer operators, reading the model's live weights
(nothing is copied, so a trainer's updates are seen at once) and writing into the sampler's preallocated KV
cache.

The step is one pure function, `decode_logits`, of tensors and two small named tuples (weights, shape), so
`torch.compile` can capture it whole (`rollout/compiled.py`): the cache is written with `index_copy_` at a
column given as a tensor, never at a Python int that would change every step.

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

from collections.abc import Callable
from typing import NamedTuple

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


class Linear(NamedTuple):
    weight: torch.Tensor
    bias: torch.Tensor | None


class LayerWeights(NamedTuple):
    input_norm: torch.Tensor
    q: Linear
    k: Linear
    v: Linear
    o: Linear
    post_norm: torch.Tensor
    gate: Linear
    up: Linear
    down: Linear


class Weights(NamedTuple):
    """The model's live parameters (the same tensors, not copies), as the step reads them."""

    embed: torch.Tensor
    layers: tuple[LayerWeights, ...]
    norm: torch.Tensor
    head: Linear


class Shape(NamedTuple):
    num_heads: int
    num_kv_heads: int
    eps: float  # RMSNorm epsilon
    scaling: float  # attention scale
    gqa: bool  # num_heads != num_kv_heads, decided here: under torch.compile the counts may be symbolic


def model_weights(model: PreTrainedModel) -> Weights:
    def lin(m: torch.nn.Linear) -> Linear:
        return Linear(m.weight, m.bias)

    layers = tuple(
        LayerWeights(
            input_norm=layer.input_layernorm.weight, q=lin(attn.q_proj), k=lin(attn.k_proj), v=lin(attn.v_proj),
            o=lin(attn.o_proj), post_norm=layer.post_attention_layernorm.weight, gate=lin(layer.mlp.gate_proj),
            up=lin(layer.mlp.up_proj), down=lin(layer.mlp.down_proj),
        )
        for layer, attn in ((layer, layer.self_attn) for layer in model.model.layers)
    )
    return Weights(model.model.embed_tokens.weight, layers, model.model.norm.weight, lin(model.lm_head))


def model_shape(model: PreTrainedModel) -> Shape:
    config, layer = model.config, model.model.layers[0]
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    return Shape(heads, kv_heads, layer.input_layernorm.variance_epsilon, layer.self_attn.scaling, heads != kv_heads)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`LlamaRMSNorm` / `Qwen2RMSNorm`: normalise in float32, scale in the input dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, `x (B, heads, D)` with `cos, sin (B, 1, D)`: x cos + rotate_half(x) sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Prefix(NamedTuple):
    """The prompts' keys and values, stored once per prompt instead of once per sample (shared-prefix decoding).

    Rows of the batch are samples: row r is sample `slot[r]` of prompt `group[r]`, each prompt having up to `n`
    samples (fewer once finished rows are dropped)."""

    keys: list[torch.Tensor]  # per layer (U, kv heads, W, D)
    values: list[torch.Tensor]  # per layer (U, kv heads, W, D)
    bias: torch.Tensor  # (U, W) additive: 0 on prompt tokens, -inf on left padding
    group: torch.Tensor  # (B,) long: the prompt of each row
    slot: torch.Tensor  # (B,) long: its sample index in 0 .. n-1
    n: int


def shared_prefix_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor,
    k_prefix: torch.Tensor,
    v_prefix: torch.Tensor,
    prefix_bias: torch.Tensor,
    group: torch.Tensor,
    slot: torch.Tensor,
    *,
    n: int,
    scale: float,
) -> torch.Tensor:
    """One decode step's attention `(B, heads, D)` over [the row's prompt ; the row's own response so far], with
    the prompt's keys and values stored once per prompt.

        softmax([q K_p^T, q K_r^T] * scale + bias) [V_p ; V_r]      per row and head

    `q (B, H, D)`; `k, v (B, kv heads, T, D)` and `bias (B, T)`: the row's own response columns; `k_prefix,
    v_prefix (U, kv heads, W, D)` and `prefix_bias (U, W)`: the prompts; `group, slot (B,)`: see `Prefix`.

    The same numbers as attention over a cache holding every row's own copy of its prompt, but the prompt part
    is a batched matmul per prompt with the queries of its `n` samples as rows (`(U, kv heads, n * H/kv, W)`
    scores), so each prompt's keys and values are read once per step instead of `n` times, and stored once
    (the idea of cascade / shared-prefix attention kernels; nothing here depends on one). Queries of grouped-
    query heads that share a key head are stacked the same way. Rows dropped from the batch leave zero queries
    in their slots, whose outputs are never read.
    """
    b, h, d = q.shape
    u, kvh, w, _ = k_prefix.shape
    g = h // kvh
    qg = q.view(b, kvh, g, d)
    slots = q.new_zeros(u, n, kvh, g, d)
    slots[group, slot] = qg  # (U, n, kv, g, D)
    qp = slots.permute(0, 2, 1, 3, 4).reshape(u, kvh, n * g, d)
    sp = torch.matmul(qp, k_prefix.transpose(-1, -2)).view(u, kvh, n, g, w)  # (U, kv, n, g, W)
    sp = sp.permute(0, 2, 1, 3, 4)[group, slot] * scale + prefix_bias[group][:, None, None, :]  # (B, kv, g, W)
    sr = torch.matmul(qg, k.transpose(-1, -2)) * scale + bias[:, None, None, :]  # (B, kv, g, T)
    p = torch.softmax(torch.cat([sp, sr], dim=-1), dim=-1)
    pp, pr = p.split([w, k.shape[2]], dim=-1)
    slots = p.new_zeros(u, n, kvh, g, w)
    slots[group, slot] = pp
    op = torch.matmul(slots.permute(0, 2, 1, 3, 4).reshape(u, kvh, n * g, w), v_prefix)  # (U, kv, n * g, D)
    op = op.view(u, kvh, n, g, -1).permute(0, 2, 1, 3, 4)[group, slot]  # (B, kv, g, D)
    return (op + torch.matmul(pr, v)).reshape(b, h, -1)


def decode_logits(
    tokens: torch.Tensor,
    mask: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    column: torch.Tensor,
    keys: list[torch.Tensor],
    values: list[torch.Tensor],
    w: Weights,
    shape: Shape,
    prefix: Prefix | None = None,
) -> torch.Tensor:
    """Logits `(B, V)` for `tokens (B,)` at rotary `cos, sin (B, D)`; writes their keys and values into column
    `column` (a `(1,)` long tensor) of the cache buffers `keys[l], values[l] (B, kv heads, capacity, D)` and
    attends over the first `S` columns, `mask (B, S)` additive (0 = attend, -inf = padding or not yet written).
    With a shared `prefix` the buffers hold the response columns only, and each row also attends over its
    prompt's keys and values, stored once per prompt (`shared_prefix_attention`)."""
    b = tokens.shape[0]
    x = F.embedding(tokens, w.embed)  # (B, d)
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, D)
    bias = mask[:, None, None, :]  # (B, 1, 1, S)
    width = mask.shape[1]
    for i, (lw, k_buf, v_buf) in enumerate(zip(w.layers, keys, values, strict=True)):
        h = rms_norm(x, lw.input_norm, shape.eps)
        q = F.linear(h, *lw.q).view(b, shape.num_heads, -1)
        k = F.linear(h, *lw.k).view(b, shape.num_kv_heads, -1)
        v = F.linear(h, *lw.v).view(b, shape.num_kv_heads, -1)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k_buf.index_copy_(2, column, k[:, :, None].to(k_buf.dtype))
        v_buf.index_copy_(2, column, v[:, :, None].to(v_buf.dtype))
        k_all, v_all = k_buf[:, :, :width].to(q.dtype), v_buf[:, :, :width].to(q.dtype)
        if prefix is None:
            out = F.scaled_dot_product_attention(
                q[:, :, None], k_all, v_all, attn_mask=bias, scale=shape.scaling, enable_gqa=shape.gqa,
            )  # (B, heads, 1, D)
        else:
            out = shared_prefix_attention(q, k_all, v_all, mask, prefix.keys[i], prefix.values[i], prefix.bias,
                                          prefix.group, prefix.slot, n=prefix.n, scale=shape.scaling)  # (B, heads, D)
        x = x + F.linear(out.reshape(b, -1), *lw.o)
        h = rms_norm(x, lw.post_norm, shape.eps)
        x = x + F.linear(F.silu(F.linear(h, *lw.gate)) * F.linear(h, *lw.up), *lw.down)
    return F.linear(rms_norm(x, w.norm, shape.eps), *w.head)


StepFn = Callable[..., torch.Tensor]  # the signature of `decode_logits`


class SharedPrompts(NamedTuple):
    """What the sampler hands `DecodeStep` for shared-prefix decoding: the prompts' cache, stored once each."""

    keys: list[torch.Tensor]  # per layer (U, kv heads, W, D)
    values: list[torch.Tensor]
    mask: torch.Tensor  # (U, W) bool, True on prompt tokens
    n: int  # samples per prompt


class DecodeStep:
    """`step(tokens (B,), mask (B, S), positions (B,)) -> logits (B, V)`, S = filled cache columns after the step.

    `mask` is additive (0 = attend, -inf = padding), from `additive_mask` once per run, so attention does not
    convert a boolean mask at every layer of every step. `fn` is `decode_logits` or a compiled version of it.
    """

    def __init__(self, model: PreTrainedModel, cache: Cache, max_position: int, fn: StepFn = decode_logits,
                 prefix: SharedPrompts | None = None):
        self.cache, self.fn, self.prefix = cache, fn, prefix
        self.weights, self.shape = model_weights(model), model_shape(model)
        embed = model.model.embed_tokens.weight
        positions = torch.arange(max_position, device=embed.device)[None]
        cos, sin = model.model.rotary_emb(embed[:1], position_ids=positions)  # (1, P, D), in the model dtype
        self.cos, self.sin = cos[0], sin[0]
        self.prefix_bias = None if prefix is None else self.additive_mask(prefix.mask)

    def additive_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """`(B, S)` bool (True = real token) -> `(B, S)` in the model dtype, 0 on real tokens and -inf on padding."""
        bias = torch.zeros(attention_mask.shape, dtype=self.cos.dtype, device=attention_mask.device)
        return bias.masked_fill_(~attention_mask, float("-inf"))

    def __call__(self, tokens: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                 rows: torch.Tensor | None = None) -> torch.Tensor:
        """`rows (B,)`: each batch row's output row (sample r of prompt r // n), needed with a shared prefix; then
        `mask` still spans prompt + response columns and the prompt's part is replaced by the stored one."""
        layers: list[PreallocatedLayer] = self.cache.layers
        start = layers[0].length
        assert start < layers[0].capacity, f"KV cache overflow: {start + 1} > capacity {layers[0].capacity}"
        column = torch.full((1,), start, dtype=torch.long, device=tokens.device)
        args = (self.cos[positions], self.sin[positions], column, [kv.keys for kv in layers],
                [kv.values for kv in layers], self.weights, self.shape)
        if self.prefix is None:
            logits = self.fn(tokens, mask, *args)
        else:
            p = self.prefix
            assert rows is not None, "a shared prefix needs the output row of every batch row"
            shared = Prefix(p.keys, p.values, self.prefix_bias, rows // p.n, rows % p.n, p.n)
            logits = self.fn(tokens, mask[:, p.mask.shape[1]:], *args, shared)
        for kv in layers:
            kv.length = start + 1
        return logits
