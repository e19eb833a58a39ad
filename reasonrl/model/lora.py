"""LoRA (Hu et al. 2021, arXiv 2106.09685, Eq. 3) through `peft`, injected into the Hugging Face model itself:

    h = W x + (alpha / r) B A x        A (r, in) random, B (out, r) = 0 at the start, W frozen

`peft.inject_adapter_in_model` replaces each targeted `nn.Linear` in place, so the policy stays the same
`PreTrainedModel` (a `LlamaForCausalLM` ...): the sampler, teacher forcing with shared prompts, DDP and FSDP2 run it
unchanged, and only the adapter weights (plus `modules_to_save`: the critic's value head) require gradients, so only
they reach the optimizer (`optim.groups` skips frozen parameters).

On disk an adapter is peft's format (`adapter_config.json` + `adapter_model.safetensors`, keys prefixed
`base_model.model.`), so `PeftModel.from_pretrained(base, dir)` loads it; `base_model_name_or_path` is the base
model's absolute path (itself possibly an adapter directory: an RL adapter on an SFT adapter). `load_merged` reads
such a directory as a plain model (what `eval`, `reflection`, `retro-search` and `export --merge` see);
`merged_state_dict` gives a training model's weights under plain names with B A folded in (the vLLM reload).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file

from reasonrl.config import ModelConfig
from reasonrl.errors import UserError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER = "default"  # peft's adapter name; one adapter per model here
PREFIX = "base_model.model."  # peft's key prefix in adapter_model.safetensors (the PeftModel wrapper's path)
MAX_NESTING = 8  # adapters on adapters (SFT -> RL -> ...) resolved when loading


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def is_model_dir(path: str | Path) -> bool:
    """A Hugging Face model directory or a peft adapter directory."""
    return (Path(path) / "config.json").is_file() or is_adapter_dir(path)


def has_lora(model: torch.nn.Module) -> bool:
    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


def block_linears(model: torch.nn.Module) -> list[str]:
    """Full names of every `nn.Linear` inside the decoder blocks (`model.model.layers`): the default targets."""
    from reasonrl.dist import decoder_layers

    blocks = {id(b) for b in decoder_layers(model)}
    prefixes = [name + "." for name, m in model.named_modules() if id(m) in blocks]
    return [name for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and any(name.startswith(p) for p in prefixes)]


def targets(model: torch.nn.Module, cfg: ModelConfig) -> list[str]:
    """`model.lora_target` (module-name suffixes, checked to name a linear layer each), or every block linear."""
    if not cfg.lora_target:
        return block_linears(model)
    linears = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    for t in cfg.lora_target:
        if not any(name == t or name.endswith("." + t) for name in linears):
            raise UserError(f"model.lora_target: {t!r} names no linear layer of {type(model).__name__}")
    return list(cfg.lora_target)


def add_lora(model: torch.nn.Module, cfg: ModelConfig, *, base: str | Path, modules_to_save: list[str] | None = None,
             adapter_dir: str | Path | None = None) -> torch.nn.Module:
    """Inject rank-`cfg.lora_r` adapters into `model` in place (everything else frozen; `modules_to_save` trained
    in full), recording `base` as the base model's path; with `adapter_dir`, load its adapter weights (a resume).
    Returns `model`."""
    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=targets(model, cfg), modules_to_save=modules_to_save,
                        base_model_name_or_path=str(Path(base).resolve()))
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    if adapter_dir is not None:
        load_adapter_weights(model, adapter_dir)
    return model


def load_adapter_weights(model: torch.nn.Module, adapter_dir: str | Path) -> None:
    """Copy a saved adapter's weights into `model`'s adapters (same rank and targets), exactly."""
    d = Path(adapter_dir)
    saved = json.loads((d / ADAPTER_CONFIG).read_text())
    ours = model.peft_config[ADAPTER]
    if (saved["r"], saved["lora_alpha"]) != (ours.r, ours.lora_alpha):
        raise UserError(f"{d}: adapter r / alpha {saved['r']} / {saved['lora_alpha']} differ from model.lora_r / "
                        f"lora_alpha {ours.r} / {ours.lora_alpha}")
    weights = {k.removeprefix(PREFIX): v for k, v in load_file(d / ADAPTER_WEIGHTS).items()}
    result = set_peft_model_state_dict(model, weights, adapter_name=ADAPTER)
    expected = set(get_peft_model_state_dict(model, adapter_name=ADAPTER))
    if result.unexpected_keys or set(weights) != expected:
        raise UserError(f"{d}: its adapter weights do not fit the model ({len(weights)} saved, {len(expected)} "
                        f"expected)")


def save_model(model: torch.nn.Module, out: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """`model.save_pretrained(out)`, or for a model with adapters the adapter alone in peft's format. `state_dict`:
    the full (gathered) state dict when the model is sharded."""
    if not has_lora(model):
        model.save_pretrained(out, state_dict=state_dict)
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = get_peft_model_state_dict(model, state_dict=state_dict, adapter_name=ADAPTER,
                                        save_embedding_layers=False)  # embeddings are never adapted here
    save_file({PREFIX + k: v.detach().cpu().contiguous() for k, v in weights.items()}, out / ADAPTER_WEIGHTS,
              metadata={"format": "pt"})
    model.peft_config[ADAPTER].save_pretrained(out)


@contextmanager
def adapters_off(model: torch.nn.Module):
    """Run `model` as its base model (adapters bypassed) inside the block; a no-op without adapters."""
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for m in layers:
        m.enable_adapters(False)
    try:
        yield model
    finally:
        for m in layers:
            m.enable_adapters(True)


def _plain_name(name: str) -> str:
    return name.replace(".base_layer.", ".").replace(".original_module.", ".")


def base_parameters(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """`module`'s non-adapter parameters under the names they have without adapters (the Parameter objects)."""
    return {_plain_name(n): p for n, p in module.named_parameters(remove_duplicate=False)
            if ".lora_" not in n and ".modules_to_save." not in n}


@torch.no_grad()
def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s weights under the plain model's names, each adapted weight W + (alpha / r) B A (peft's
    `get_delta_weight`), each `modules_to_save` module's trained copy; `model.state_dict()` without adapters.
    `model` is not changed (its base stays the frozen reference)."""
    state = model.state_dict()
    if not has_lora(model):
        return state
    out = {}
    for k, v in state.items():
        if ".lora_" in k or ".original_module." in k:
            continue
        out[_plain_name(k.replace(f".modules_to_save.{ADAPTER}.", "."))] = v
    for name, m in model.named_modules():
        if isinstance(m, LoraLayer) and ADAPTER in m.lora_A:
            w = m.get_base_layer().weight
            out[f"{name}.weight"] = w + m.get_delta_weight(ADAPTER).to(w.dtype)
    return out


def base_path(adapter_dir: str | Path) -> Path:
    """The base model directory an adapter directory names (`base_model_name_or_path`)."""
    d = Path(adapter_dir)
    try:
        base = json.loads((d / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{d / ADAPTER_CONFIG}: not a peft adapter config ({type(e).__name__}: {e})") from None
    p = Path(base) if base else None
    if p is None or not is_model_dir(p):
        raise UserError(f"{d}: its base model {base!r} (base_model_name_or_path in {ADAPTER_CONFIG}) is not a model "
                        "directory here")
    return p


def adapter_chain(path: str | Path) -> list[Path]:
    """`[path, its base, the base's base, ...]` down to a plain model directory (`[path]` for a plain model): every
    directory a model at `path` is loaded from."""
    chain = [Path(path)]
    while is_adapter_dir(chain[-1]):
        if len(chain) > MAX_NESTING:
            raise UserError(f"{path}: more than {MAX_NESTING} adapters on adapters (a cycle?)")
        chain.append(base_path(chain[-1]))
    return chain


def load_merged(adapter_dir: str | Path, load_base) -> torch.nn.Module:
    """A plain model: `load_base(path)` of the adapter's base (recursively merged when that is an adapter directory
    too), with the adapter folded in (`PeftModel.merge_and_unload`)."""
    chain = adapter_chain(adapter_dir)
    model = load_base(chain.pop())
    for d in reversed(chain):
        model = PeftModel.from_pretrained(model, d).merge_and_unload()
    return model
