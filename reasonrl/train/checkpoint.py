"""Atomic, resumable checkpoints.

A checkpoint is `run_dir/checkpoints/step_NNNNNNN/`: a Hugging Face model directory (weights in
safetensors, config, tokenizer) that `from_pretrained` loads as it is (with LoRA, `model.lora_r`: the adapter in
peft's format, over the base model `model.path`), plus `trainer_state.pt` (optimizer,
scheduler, step, data position, anything the trainer adds), `rank{r}.pt` per process (RNG, sharded state)
and `meta.json` (step, parameters, tokens seen, compute = 6 x params x tokens). Everything is written into
a temporary directory first and renamed into place, so a crash never leaves a half-written checkpoint that
resume would pick up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reasonrl import dist
from reasonrl.model.lora import has_lora, save_model

STATE_FILE = "trainer_state.pt"
OVERWRITTEN = ".overwritten"
"""Where `--overwrite` moves the old run's files (`rundir.claim`) until the new run has a checkpoint of its own."""


def step_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints in step order (a temporary directory is never listed)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith("step_") and (p / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """`optimizer.state_dict()`; for Dion in data-parallel mode (a process group set) the rank momenta differ and
    their mean is the state, so they are averaged first: a collective, call it on every rank."""
    if getattr(optimizer, "process_group", None) is not None:
        optimizer.synchronize_for_checkpoint()
    return optimizer.state_dict()


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    models: dict[str, torch.nn.Module],
    tokenizer,
    trainer_state: dict[str, Any],
    meta: dict[str, Any],
    rank_state: dict[str, Any] | None = None,
    keep: bool = False,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `step` atomically; `models` maps a subdirectory ("" = the checkpoint root) to a model.

    Collective under torch.distributed: every rank calls it (FSDP2 gathers shards). Each rank also writes
    `rank{r}.pt` with its RNG state and `rank_state` (e.g. a sharded optimizer's local state).
    `keep` marks checkpoints never pruned (e.g. log-spaced ones); other ones beyond the newest `keep_last`
    are deleted.
    """
    final = step_dir(run_dir, step)
    tmp = final.parent / f".tmp-{final.name}"
    # collective: all ranks; a LoRA model's adapter alone is saved, so its frozen base is not gathered
    full = {sub: dist.full_state_dict(m, trained_only=has_lora(dist.unwrap(m))) for sub, m in models.items()}
    if dist.is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for sub, m in models.items():
            save_model(dist.unwrap(m), tmp / sub, full[sub])  # a LoRA model: its adapter alone
        tokenizer.save_pretrained(tmp)
        torch.save(trainer_state, tmp / STATE_FILE)
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step, "keep": keep}, indent=2) + "\n")
    dist.barrier()
    torch.save({"rng": rng_state(), **(rank_state or {})}, tmp / f"rank{dist.rank()}.pt")
    dist.barrier()
    if dist.is_main():
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _prune(run_dir, keep_last)
        drop_overwritten(run_dir)
    dist.barrier()
    return final


def drop_overwritten(run_dir: str | Path) -> None:
    """Delete the run that `--overwrite` moved aside (`OVERWRITTEN`): called once the new run has saved a checkpoint
    or its final output, so a new run that dies before that leaves the old one restorable. Main process only."""
    shutil.rmtree(Path(run_dir) / OVERWRITTEN, ignore_errors=True)


def _prune(run_dir: str | Path, keep_last: int) -> None:
    ckpts = list_checkpoints(run_dir)
    prunable = [p for p in ckpts if not json.loads((p / "meta.json").read_text()).get("keep", False)]
    for p in prunable[:-keep_last] if keep_last > 0 else prunable:
        if p != ckpts[-1]:
            shutil.rmtree(p)


def load_trainer_state(ckpt: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer state, this rank's state); restores this rank's RNG (rank 0's when the world size changed)."""
    rank_file = ckpt / f"rank{dist.rank()}.pt"
    rank_state = torch.load(rank_file if rank_file.is_file() else ckpt / "rank0.pt", weights_only=False)
    set_rng_state(rank_state.pop("rng"))
    return torch.load(ckpt / STATE_FILE, weights_only=False), rank_state


def log_spaced_steps(total_steps: int, num: int) -> set[int]:
    """About `num` distinct steps spaced evenly in log scale from 1 to `total_steps`."""
    if num <= 0 or total_steps <= 0:
        return set()
    return {int(round(s)) for s in np.logspace(0, np.log10(total_steps), num)}


def export_final(run_dir: str | Path, model: torch.nn.Module, tokenizer) -> Path:
    """The final model as a HF directory `run_dir/final` (what a later phase starts from; a LoRA run's adapter,
    which `reasonrl export --merge` turns into a plain model). Collective."""
    state = dist.full_state_dict(model, trained_only=has_lora(dist.unwrap(model)))
    out = Path(run_dir) / "final"
    if dist.is_main():
        tmp = out.parent / ".tmp-final"
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(dist.unwrap(model), tmp, state)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        drop_overwritten(run_dir)
    dist.barrier()
    return out
