"""`reasonrl export --merge RUN OUT`: a LoRA run's adapter folded into its base, written as a plain Hugging Face model
that any tool loads without peft (`AutoModelForCausalLM.from_pretrained(OUT)`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reasonrl.errors import UserError
from reasonrl.model import lora
from reasonrl.outputs import check_output_dir


def adapter_source(run: str | Path) -> Path:
    """The adapter directory `run` names: itself, else its `final/`, else its newest checkpoint."""
    from reasonrl.train.checkpoint import latest_checkpoint

    r = Path(run)
    if not r.is_dir():
        raise UserError(f"export RUN {r}: not a directory")
    # a run directory's own config.json is its resolved config, not a model: its final/ and checkpoints come first
    candidates = [r] if lora.is_adapter_dir(r) else [r / "final", latest_checkpoint(r), r]
    src = next((c for c in candidates if c is not None and lora.is_model_dir(c)), None)
    if src is None:
        raise UserError(f"export RUN {r}: neither an adapter directory nor a run directory with final/ or a checkpoint")
    if not lora.is_adapter_dir(src):
        raise UserError(f"export RUN {r}: {src} is a plain model (a full fine-tune, model.lora_r = 0): nothing to "
                        "merge, use it as it is")
    return src


def check_fresh_output(out: str | Path) -> Path:
    """OUT must not exist or be an empty directory (nothing is ever overwritten), and be creatable."""
    p = Path(out)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise UserError(f"export OUT {p}: exists and is not an empty directory; choose a new path")
    return check_output_dir(p, "export OUT")


def export_merged(run: str | Path, out: str | Path) -> Path:
    """Merge the adapter of `run` (`adapter_source`) into its base (recursively, for an adapter on an adapter) and
    write the plain model with its tokenizer to `out`, atomically. Every check runs before anything is written."""
    from reasonrl.model.tiny import load_model, num_params

    src = adapter_source(run)
    dest = check_fresh_output(out)
    model, tokenizer = load_model(src)
    tmp = dest.parent / f".tmp-{dest.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, dest)
    print(f"export: {src} merged into {lora.base_path(src)} ({num_params(model):,} params) -> {dest}")
    return dest
