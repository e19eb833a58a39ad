"""Per-token log-probabilities (and entropies) of given sequences under a causal LM, by teacher forcing.

    logp[n, t] = log softmax(logits[n, t-1] / T)[input_ids[n, t]]      logp[n, 0] = 0

This is the training-side twin of the sampler: on a `Rollout` it reproduces `rollout.logprobs` (the plain
temperature-T distribution, no top-k/top-p truncation), so it gives the PPO/GRPO `logp` and `old_logp`.
Correct under left padding (position ids come from the attention mask; padded positions return 0); the
log-probs are differentiable, the entropy is a detached diagnostic (no loss uses it). For large vocabularies
pass `chunk_size`: log-softmax, gather and entropy then run over `chunk_size` positions at a time in float32,
so no full `(N, L, V)` float32 copy of the logits is ever made; under autograd each chunk is recomputed in the
backward pass instead of being kept.
"""

from __future__ import annotations

import inspect

import torch
from torch.utils.checkpoint import checkpoint
from transformers import DynamicCache, PreTrainedModel

from reasonrl.model.activation_ckpt import recomputes
from reasonrl.rollout.cache import cache_kwarg


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """`(N, L)` positions counting real tokens only, so left padding does not shift them (0 on padding)."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def _chunk_stats(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(targets) and entropy (zeros unless `with_entropy`) for `logits (N, C, V)`, `targets (N, C)`, float32."""
    z = logits.float() / temperature
    lse = torch.logsumexp(z, dim=-1)  # (N, C)
    logp = z.gather(-1, targets[..., None])[..., 0] - lse
    if not with_entropy:
        return logp, torch.zeros_like(logp)
    with torch.no_grad():  # a diagnostic: never differentiated, so autograd keeps no (N, C, V) tensors for it
        z, lse = z.detach(), lse.detach()
        entropy = lse - (torch.softmax(z, dim=-1) * z).sum(dim=-1)  # H = lse - E_p[z]
    return logp, entropy


def token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    with_entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(logp, entropy)`, each `(N, C)` float32, of `targets (N, C)` under `logits (N, C, V)` at `temperature`.

    With `with_entropy=False` the entropy is not computed (zeros are returned in its place).
    """
    assert temperature > 0, f"temperature must be > 0, got {temperature}"
    size = chunk_size or logits.shape[1]
    parts = []
    for start in range(0, logits.shape[1], size):
        chunk, tgt = logits[:, start : start + size], targets[:, start : start + size]
        if chunk_size and torch.is_grad_enabled() and logits.requires_grad:
            parts.append(checkpoint(_chunk_stats, chunk, tgt, temperature, with_entropy, use_reentrant=False))
        else:
            parts.append(_chunk_stats(chunk, tgt, temperature, with_entropy))
    return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)


def sequence_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    return_entropy: bool = False,
    prompt_len: int = 0,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`(N, L)` float32: position t holds log p(input_ids[t] | input_ids[<t]); position 0 and padding hold 0.

    With `return_entropy`, also the `(N, L)` entropy of the predicted distribution at each position (the one
    that produced token t), same zeros. Gradients flow unless called under `torch.no_grad()`.

    With `prompt_len = P > 0` (a left-padded prompt block in the first P columns, as rollouts produce), rows
    with identical prompts share one forward pass over them (see `shared_prompt_logits`); then only positions
    >= P are computed and positions < P hold 0 (prompt tokens are never trained).
    """
    start = 1
    logits = shared_prompt_logits(model, input_ids, attention_mask, prompt_len) if prompt_len else None
    if logits is not None:
        start = prompt_len
    else:
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                    use_cache=False)  # no KV cache is read back: keeping one would only hold memory
        logits = out.logits[:, :-1]  # logits at t-1 predict token t
    targets = input_ids[:, start:]
    logp, entropy = token_logprobs(
        logits, targets, temperature=temperature, chunk_size=chunk_size, with_entropy=return_entropy
    )
    valid = attention_mask[:, start:].bool() & attention_mask[:, start - 1 : -1].bool()  # real after real
    zero = logp.new_zeros(input_ids.shape[0], start)
    logp = torch.cat([zero, logp.masked_fill(~valid, 0.0)], dim=1)
    if not return_entropy:
        return logp
    return logp, torch.cat([zero, entropy.masked_fill(~valid, 0.0)], dim=1)


def shared_prompt_logits(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int
) -> torch.Tensor | None:
    """The model's outputs at positions P-1..L-2 (`(N, L - P, ...)`: for a causal LM, the logits predicting
    tokens P..L-1), running each distinct prompt (the first P columns) once.

    Rows that share a prompt (GRPO / VAPO groups) share one forward pass over it: its key/value cache is
    gathered per row (a differentiable index) and the responses attend to it, so gradients reach the prompt
    tokens' computation from every row. Same numbers as the plain pass, fewer FLOPs when prompts repeat.
    Works for any HF decoder that takes a cache (causal LM, or the critic's token-classification head).
    Returns None (caller takes the plain path) when no prompt repeats, when the model is a DDP wrapper (DDP prepares
    its gradient hooks once per forward call, and this makes two; the RL trainers pass DDP's bare module and
    average the gradients themselves: `rl.training_module`), or when the pass would be gradient-checkpointed (a
    checkpointed block gets no cache: `model.activation_ckpt`).
    """
    if not isinstance(model, PreTrainedModel) or recomputes(model) or not _has_response(input_ids, prompt_len):
        return None
    p = prompt_len
    uniq, inverse = torch.unique(_prompt_keys(input_ids, attention_mask, p), dim=0, return_inverse=True)  # (U, 2P)
    if uniq.shape[0] == input_ids.shape[0]:  # no prompt repeats (`prompts_repeat`)
        return None
    p_ids, p_mask = uniq[:, :p], uniq[:, p:].to(attention_mask.dtype)
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))  # filled in place by the forward
    kw = {cache_kwarg(model): cache, "use_cache": True}
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    prompt_out = model(input_ids=p_ids, attention_mask=p_mask, position_ids=position_ids(p_mask), **kw, **last_only)
    cache.batch_select_indices(inverse)  # (U, ...) -> (N, ...), a gather autograd sees through
    out = model(input_ids=input_ids[:, p:], attention_mask=attention_mask,
                position_ids=position_ids(attention_mask)[:, p:], **kw)
    return torch.cat([prompt_out.logits[inverse, -1:], out.logits[:, :-1]], dim=1)


def prompts_repeat(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int) -> bool:
    """Whether `shared_prompt_logits` shares a pass over the first `prompt_len` columns of these rows (for a
    Hugging Face model): some prompt occurs in two rows, and a response column follows the prompts."""
    if not _has_response(input_ids, prompt_len):
        return False
    return torch.unique(_prompt_keys(input_ids, attention_mask, prompt_len), dim=0).shape[0] < input_ids.shape[0]


def _has_response(input_ids: torch.Tensor, prompt_len: int) -> bool:
    return 0 < prompt_len < input_ids.shape[1]


def _prompt_keys(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """`(N, 2P)`: a row's prompt tokens and their mask; equal keys = the same left-padded prompt."""
    p = prompt_len
    return torch.cat([input_ids[:, :p], attention_mask[:, :p].to(input_ids.dtype)], dim=1)
