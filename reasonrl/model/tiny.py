"""Tiny causal LMs built from a transformers config (Llama or Qwen2), and loading of any local HF model.

Presets by name; the model is a plain `transformers` model, saved with `save_pretrained` (safetensors), so
`AutoModelForCausalLM.from_pretrained(dir)` loads it and every component runs unchanged on a real model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
)

from reasonrl.errors import UserError, one_line

PRESETS: dict[str, dict] = {
    # ~0.8M parameters with a 512-token vocabulary (tied embeddings)
    "tiny": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=4),
    # ~10M parameters
    "small": dict(hidden_size=320, intermediate_size=960, num_hidden_layers=8, num_attention_heads=5,
                  num_key_value_heads=5),
    # ~99M parameters: the top of the scaling table in docs/benchmarks.md (benchmarks/rollout.py --scaling)
    "medium": dict(hidden_size=768, intermediate_size=2560, num_hidden_layers=12, num_attention_heads=12,
                   num_key_value_heads=12),
    # for unit tests: a few thousand parameters
    "micro": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4),
}


def build_model(
    preset: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    arch: str = "llama",
    seed: int = 0,
    max_positions: int = 1024,
) -> PreTrainedModel:
    """A freshly initialised causal LM of the named preset, sized to `tokenizer`'s vocabulary."""
    if preset not in PRESETS:
        raise UserError(f"model.preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    return build_shape(tokenizer, arch=arch, seed=seed, max_positions=max_positions, **PRESETS[preset])


def build_shape(
    tokenizer: PreTrainedTokenizerBase, *, arch: str = "llama", seed: int = 0, max_positions: int = 1024, **shape
) -> PreTrainedModel:
    """A freshly initialised causal LM of any `shape` (hidden_size, num_hidden_layers, ... as the transformers
    config names them), tied embeddings, sized to `tokenizer`'s vocabulary; seeded without touching the global RNG."""
    config_cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **shape,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_model_dir(path: str | Path, what: str = "model.path") -> Path:
    """`path` looks like a HF model directory (a config.json) or a peft adapter directory (`lora.is_model_dir`), else
    a UserError naming `what`."""
    from reasonrl.model import lora

    p = Path(path)
    if not lora.is_model_dir(p):
        raise UserError(f"{what}: {p} is not a Hugging Face model directory (no config.json)")
    return p


def load_model(path: str | Path, tokenizer_path: str | Path | None = None, *, dtype: torch.dtype = torch.float32,
               what: str = "model.path"):
    """Load any local HF causal LM and its tokenizer; a path that is not a model is a `UserError` naming `what`
    (the option that gave the path). A peft adapter directory (a LoRA run's checkpoint or `final/`) loads as its base
    with the adapter merged in (`lora.load_merged`), the tokenizer from the adapter directory when it holds one, else
    from the base."""
    from reasonrl.model import lora

    p = check_model_dir(path, what)
    tp = Path(tokenizer_path) if tokenizer_path else p
    if not tokenizer_path and lora.is_adapter_dir(p) and not _has_tokenizer(p):
        tp = lora.base_path(p)
    if not _has_tokenizer(tp):
        raise UserError(f"{'model.tokenizer_path' if tokenizer_path else what}: {tp} holds no tokenizer files")

    def from_pretrained(d: Path):
        return AutoModelForCausalLM.from_pretrained(d, dtype=dtype, local_files_only=True)

    try:
        model = lora.load_merged(p, from_pretrained) if lora.is_adapter_dir(p) else from_pretrained(p)
        tokenizer = AutoTokenizer.from_pretrained(tp, local_files_only=True)
    except (OSError, ValueError, SafetensorError) as e:  # SafetensorError: truncated or corrupt weights
        raise UserError(f"{what}: {p}: cannot load: {one_line(e)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def _has_tokenizer(path: Path) -> bool:
    return any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))

