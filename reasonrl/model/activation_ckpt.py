"""Gradient (activation) checkpointing with Hugging Face's own mechanism: each decoder block keeps only its input in
the forward pass and is run again in the backward pass (`torch.utils.checkpoint`, `use_reentrant=False`), so the
activations held are one block's instead of every block's; gradients are the same.

Two details of HF's mechanism (`transformers.modeling_layers.GradientCheckpointingLayer`) matter here:

- It checkpoints a block only while that block is in training mode. The RL updates run the model in eval mode (no
  dropout: `train/rl.py`), so `eval_with_checkpointing` puts the checkpointing blocks alone back in training mode:
  their submodules (attention, MLP, dropout, LoRA dropout) stay in eval mode, so nothing but the recomputation
  changes.
- A checkpointed block gets no KV cache (a replay would write it twice). The teacher-forced passes that share a
  prompt through the cache (`model.logprobs.shared_prompt_logits`) therefore take the plain path whenever
  `recomputes(model)`: with gradients on and checkpointing armed. Passes without gradients (old log-probs, the
  reference, the values for GAE, sampling) are not checkpointed and keep sharing.
"""

from __future__ import annotations

import weakref

import torch
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer

from reasonrl.errors import UserError


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Turn HF gradient checkpointing on for every decoder block of `model` (non-reentrant)."""
    if not (isinstance(model, PreTrainedModel) and model.supports_gradient_checkpointing):
        raise UserError(f"model.gradient_checkpointing: {type(model).__name__} does not support it")
    model.activation_checkpointing_enable({"use_reentrant": False})


def checkpointing_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [b for b in _blocks(model) if b.gradient_checkpointing]


def eval_with_checkpointing(model: torch.nn.Module) -> torch.nn.Module:
    """`model.eval()`, then the checkpointing blocks alone back in training mode (see the module docstring): no
    dropout anywhere, and the blocks recompute in the backward pass. A plain `eval()` without checkpointing."""
    model.eval()
    for block in checkpointing_layers(model):
        block.training = True  # this module's flag only: its children stay in eval mode
    return model


def recomputes(model: torch.nn.Module) -> bool:
    """Whether a forward pass of `model` now would be checkpointed (gradients on and an armed block). Asked on every
    forward pass, so the blocks are found once per model (`_blocks`) and only their flags are read here."""
    return torch.is_grad_enabled() and any(b.training and b.gradient_checkpointing for b in _blocks(model))


_BLOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """`model`'s `GradientCheckpointingLayer` blocks, armed or not: scanned once per model object (a model's blocks
    are built with it; arming them later changes their flags, which `recomputes` reads live)."""
    blocks = _BLOCKS.get(model)
    if blocks is None:
        blocks = _BLOCKS[model] = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    return blocks
