"""Model + tokenizer for a run: a local HF model by `model.path`, or a fresh tiny model (the embedded default)."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.model.tiny import build_model, load_model
from reasonrl.model.tokenizer import train_tokenizer
from reasonrl.outputs import check_output_dir
from reasonrl.tasks import synthetic

TOKENIZER_CORPUS = 5000  # synthetic records the embedded tokenizer is trained on


def world_corpus(difficulty_levels=(1, 2, 3, 4, 5), num_per_level: int = TOKENIZER_CORPUS // 5) -> list[str]:
    """Texts covering every difficulty, slip and switch of the synthetic world (for tokenizer training)."""
    texts = []
    for d in difficulty_levels:
        for r in synthetic.generate(num_per_level, seed=0, difficulty=d, slip_fraction=0.2, alt_fraction=0.2):
            texts.append(r["prompt"] + "\n" + r["response"])
    return texts


def build_tokenizer():
    return train_tokenizer(world_corpus())


def load_or_build(cfg: Config):
    """(model, tokenizer): load `model.path` if set, else build `model.preset` with the embedded tokenizer."""
    if cfg.model.path:
        return load_model(cfg.model.path, cfg.model.tokenizer_path or None)
    if cfg.model.tokenizer_path:
        tp = Path(cfg.model.tokenizer_path)
        if not (tp / "tokenizer.json").is_file():
            raise UserError(f"model.tokenizer_path: {tp} holds no tokenizer.json")
        tokenizer = AutoTokenizer.from_pretrained(tp, local_files_only=True)
    else:
        tokenizer = build_tokenizer()
    return build_model(cfg.model.preset, tokenizer, arch=cfg.model.arch, seed=cfg.model.init_seed), tokenizer


def prepare_for_training(model, cfg: Config, *, adapter_dir: Path | None = None, base: str | None = None,
                         modules_to_save: list[str] | None = None):
    """The configured training form of a loaded model: LoRA adapters over the frozen base (`model.lora_r`; `base`,
    default `model.path`, is where that base is read from; `modules_to_save` are trained whole; with `adapter_dir`,
    a resumed run's adapter weights) and gradient checkpointing (`model.gradient_checkpointing`). Returns the model
    (changed in place)."""
    from reasonrl.model import lora
    from reasonrl.model.activation_ckpt import enable_checkpointing

    if cfg.model.lora_r:
        lora.add_lora(model, cfg.model, base=base or cfg.model.path, modules_to_save=modules_to_save,
                      adapter_dir=adapter_dir)
    if cfg.model.gradient_checkpointing:
        enable_checkpointing(model)
    return model


def save_embedded_tokenizer(out: str | Path) -> Path:
    """Train the embedded tokenizer and save it where `AutoTokenizer.from_pretrained(out)` loads it."""
    check_output_dir(out, "tokenizer --out")
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(out)
    print(f"tokenizer: {len(tokenizer)} tokens -> {out}")
    return Path(out)


def init_model(cfg: Config, out: str | Path) -> Path:
    """Build (or load) the configured model and save it with its tokenizer as a HF directory."""
    from reasonrl.model.tiny import num_params

    check_output_dir(out, "init-model --out")
    model, tokenizer = load_or_build(cfg)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"model: {type(model).__name__} preset={cfg.model.preset} params={num_params(model):,} -> {out}")
    return Path(out)
