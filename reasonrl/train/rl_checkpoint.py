"""RL checkpoints: the models (gathered whole; a LoRA model's adapter alone), the optimizers (whole, or per process
when FSDP2 shards them), the scheduler and the trainer's progress (prompt cursor, step, tokens seen)."""

from __future__ import annotations

from pathlib import Path

from reasonrl import dist
from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.train import checkpoint as ckpt_lib
from reasonrl.train import fsdp
from reasonrl.train.rl import progress_state


def save(run_dir: Path, step: int, *, models: dict, tokenizer, optimizers: dict, scheduler, state: dict,
         n_params: int) -> None:
    """The models (gathered whole), optimizers, scheduler and progress at `step`. With sharded (FSDP2) models the
    optimizer states are shards: each process saves its own (`rank{r}.pt`), and `optimizer_shards` says how many."""
    opt_states = {k: ckpt_lib.optimizer_state(o) for k, o in optimizers.items()}
    shards = dist.world_size() if any(dist.is_sharded(m) for m in models.values()) else 0
    ckpt_lib.save_checkpoint(
        run_dir, step, models=models, tokenizer=tokenizer,
        trainer_state={"optimizers": None if shards else opt_states, "optimizer_shards": shards,
                       "scheduler": scheduler.state_dict(), "progress": dict(state)},
        rank_state={"optimizers": opt_states} if shards else None,
        meta={"params": n_params, "tokens_seen": state.get("tokens_seen", 0),
              "compute": 6.0 * n_params * state.get("tokens_seen", 0)})


def load(ckpt: Path, optimizers: dict, scheduler, cfg: Config) -> dict:
    """Restore `optimizers` (by name) and `scheduler` from checkpoint `ckpt` and return the progress
    (`progress_state`). Sharded optimizer states come from this process's file, so they resume only on as many
    processes under FSDP2 (one line otherwise, on every process)."""
    trainer_state, rank_state = ckpt_lib.load_trainer_state(ckpt)
    saved, now = trainer_state.get("optimizer_shards", 0), dist.world_size() if fsdp.sharded(cfg) else 0
    if saved != now:
        def how(n: int) -> str:
            return f"in {n} FSDP2 shards" if n else "whole"

        raise UserError(f"checkpoint {ckpt}: its optimizer states were saved {how(saved)}, this run holds them "
                        f"{how(now)}: resume with the processes and dist.strategy it was written with")
    states = rank_state["optimizers"] if saved else trainer_state["optimizers"]
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(states[name])
    scheduler.load_state_dict(trainer_state["scheduler"])
    return progress_state(trainer_state)
