"""The `Rollout` a sampler returns, and `assemble`, which lays decoded tokens out as one: shared by the built-in
engine (`sampler.sample`) and the vLLM backend, below both, so neither imports the other's module back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from transformers import PreTrainedTokenizerBase

from reasonrl.rollout.engine import Decoded


@dataclass
class Rollout:
    """A batch of samples, N = num_prompts * n rows, L = prompt_len + longest response."""

    input_ids: torch.Tensor  # (N, L) long: left-padded prompt, then response, right-padded with pad
    attention_mask: torch.Tensor  # (N, L) long: 1 on prompt and response tokens, 0 on padding
    response_mask: torch.Tensor  # (N, L) bool: True on sampled tokens (the trained ones), eos included
    logprobs: torch.Tensor  # (N, L) float32: log p_T(token | before) of sampled tokens, plain model at T; 0 elsewhere
    sampling_logprobs: torch.Tensor  # (N, L) float32: same under the truncated distribution actually sampled
    prompt_index: torch.Tensor  # (N,) long: which prompt each row answers
    response_lengths: torch.Tensor  # (N,) long: tokens from prompt_len on (prefix, sampled, tool output, eos)
    num_tool_calls: torch.Tensor  # (N,) long
    response_texts: list[str] = field(default_factory=list)  # decoded response, prefix and tool output included
    finish_reasons: list[str] = field(default_factory=list)  # "eos" | "stop" | "length"
    prompt_len: int = 0  # the column where responses start

    def to(self, device: torch.device | str) -> Rollout:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v.to(device) for k, v in moved.items() if isinstance(v, torch.Tensor)})


def assemble(
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[Sequence[int]],
    prefix_ids: Sequence[Sequence[int]],
    decoded: Decoded,
    n: int,
) -> Rollout:
    """Lay prompts (left-padded), prefixes and decoded tokens out as one `Rollout` on the decoded tensors' device."""
    num_rows, pad = len(decoded.lengths), tokenizer.pad_token_id
    prompt_len = max(len(p) for p in prompt_ids)
    resp_lens = [len(prefix_ids[r // n]) + decoded.lengths[r] for r in range(num_rows)]
    width = prompt_len + max(resp_lens)
    ids = torch.full((num_rows, width), pad, dtype=torch.long)
    attn = torch.zeros(num_rows, width, dtype=torch.long)
    mask = torch.zeros(num_rows, width, dtype=torch.bool)
    logp = torch.zeros(num_rows, width)
    slogp = torch.zeros(num_rows, width)
    gen_ids, gen_mask = decoded.tokens.cpu(), decoded.sampled.cpu()
    gen_logp, gen_slogp = decoded.logp.cpu(), decoded.sampling_logp.cpu()
    for r in range(num_rows):
        prompt, prefix, k = prompt_ids[r // n], prefix_ids[r // n], decoded.lengths[r]
        start, gen_start, end = prompt_len - len(prompt), prompt_len + len(prefix), prompt_len + resp_lens[r]
        ids[r, start:prompt_len] = torch.tensor(prompt, dtype=torch.long)
        ids[r, prompt_len:gen_start] = torch.tensor(prefix, dtype=torch.long)
        ids[r, gen_start:end] = gen_ids[r, :k]
        attn[r, start:end] = 1
        mask[r, gen_start:end] = gen_mask[r, :k]
        logp[r, gen_start:end] = gen_logp[r, :k]
        slogp[r, gen_start:end] = gen_slogp[r, :k]
    texts = tokenizer.batch_decode(
        [ids[r, prompt_len : prompt_len + resp_lens[r]].tolist() for r in range(num_rows)], skip_special_tokens=True
    )
    device = decoded.tokens.device
    return Rollout(
        input_ids=ids,
        attention_mask=attn,
        response_mask=mask,
        logprobs=logp,
        sampling_logprobs=slogp,
        prompt_index=torch.arange(num_rows) // n,
        response_lengths=torch.tensor(resp_lens, dtype=torch.long),
        num_tool_calls=torch.tensor(decoded.num_tool_calls, dtype=torch.long),
        response_texts=texts,
        finish_reasons=list(decoded.finish_reasons),
        prompt_len=prompt_len,
    ).to(device)
