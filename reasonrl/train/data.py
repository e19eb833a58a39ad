"""SFT examples: prompt + response token ids with a loss mask on the response, and deterministic batching."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from reasonrl.errors import UserError
from reasonrl.tasks.prompts import record_prompt


@dataclass
class Example:
    ids: list[int]
    num_prompt: int  # tokens before the response; only tokens after it are trained on


def encode_example(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, *, max_len: int) -> Example:
    """Tokens of the formatted prompt text (`record_prompt`), then the response and EOS, truncated to `max_len`
    from the right."""
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return Example(ids=(p_ids + r_ids)[:max_len], num_prompt=len(p_ids))


def encode_records(tokenizer, records: Iterable[dict], *, template: str, max_len: int) -> list[Example]:
    """Every record encoded up front (SFT data is read whole: its checks run before the run directory is claimed)."""
    out = []
    for i, r in enumerate(records):
        if not r.get("response"):
            raise UserError(f"SFT data: record {i} ({r.get('id', '?')}) has no response to train on")
        ex = encode_example(tokenizer, record_prompt(tokenizer, r, template), r["response"], max_len=max_len)
        if ex.num_prompt >= len(ex.ids):
            raise UserError(f"SFT data: record {i} prompt alone fills data.max_len={max_len}; raise it")
        out.append(ex)
    return out


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask and a bool `loss_mask` on target positions.

    `loss_mask[b, t]` is True when token t is a response token (it is predicted from positions < t).
    """
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    loss_mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for b, e in enumerate(examples):
        ids[b, : len(e.ids)] = torch.tensor(e.ids)
        attn[b, : len(e.ids)] = 1
        loss_mask[b, e.num_prompt : len(e.ids)] = True
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask}


def micro_batch_indices(g: int, *, batch_size: int, num_examples: int, seed: int) -> list[int]:
    """Example indices of global micro-batch `g`: consecutive slices of a fresh permutation per epoch.

    A pure function of (g, seed), so any process can find its data and a resumed run continues exactly.
    """
    return stream_indices(g * batch_size, batch_size, num_examples=num_examples, seed=seed)


def stream_indices(start: int, num: int, *, num_examples: int, seed: int) -> list[int]:
    """Positions `[start, start + num)` of the example stream: a fresh permutation of the examples per epoch,
    epochs one after another. Contiguous reads draw every example once per epoch."""
    out = []
    for offset in range(start, start + num):
        epoch, pos = divmod(offset, num_examples)
        out.append(int(_permutation(num_examples, seed, epoch)[pos]))
    return out


_PERM_CACHE: dict[tuple[int, int, int], np.ndarray] = {}


def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    key = (n, seed, epoch)
    if key not in _PERM_CACHE:
        if len(_PERM_CACHE) > 4:
            _PERM_CACHE.clear()
        _PERM_CACHE[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _PERM_CACHE[key]
