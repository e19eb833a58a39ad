"""The start and end of every training run, shared by the trainers (sft.py, ppo.py, grpo.py)."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from pathlib import Path

import torch

from reasonrl import dist
from reasonrl.config import Config
from reasonrl.eval.evaluate import heldout_accuracy
from reasonrl.eval.plots import plot_curves
from reasonrl.model.setup import load_or_build, prepare_for_training
from reasonrl.model.tiny import load_model
from reasonrl.tasks.sources import warn_if_heldout_is_train
from reasonrl.train import checkpoint as ckpt_lib
from reasonrl.train import rundir, trackers
from reasonrl.train.logging import MetricsLog, read_metrics


def start_run(cfg: Config):
    """Join the process group, check the run directory (`rundir.check`: nothing is written yet), seed, and load
    the model: from the newest checkpoint when resuming, else as configured, in its training form (LoRA, gradient
    checkpointing: `setup.prepare_for_training`). Returns (run_dir, device, resume_from or None, model, tokenizer).
    The trainer then reads its data and calls `open_log`. The trackers of `log.report_to` are checked here too
    (`trackers.check`), before the model is loaded."""
    dist.init(cfg.dist.backend)
    run_dir = check_run(cfg)
    torch.manual_seed(cfg.train.seed)
    resume_from = ckpt_lib.latest_checkpoint(run_dir) if cfg.train.resume else None
    lora = cfg.model.lora_r > 0  # a LoRA checkpoint holds the adapter alone: the base is `model.path`
    model, tokenizer = load_model(resume_from) if resume_from and not lora else load_or_build(cfg)
    model = prepare_for_training(model, cfg, adapter_dir=resume_from if lora else None)
    return run_dir, dist.device(), resume_from, model, tokenizer


def check_run(cfg: Config, *, run_files: tuple[str, ...] = rundir.RUN_FILES) -> Path:
    """Before anything is read or written: the run directory (`rundir.check`; `run_files`: what the command
    writes there) and the trackers of `log.report_to` (`trackers.check`). Returns the run directory."""
    run_dir = rundir.check(cfg, run_files=run_files)
    trackers.check(cfg)
    return run_dir


def check_prompts(cfg: Config, model, tokenizer, records: Iterable[dict], chunk: int = 4096) -> None:
    """Every prompt of `records` fits the model's positions (else one UserError line naming the problem's id).
    Read `chunk` records at a time, so a lazy source (`hf_data.Records`) is never held whole in memory."""
    from reasonrl.rollout.sampler import check_prompt_positions
    from reasonrl.tasks.prompts import record_prompt

    rows, start = iter(records), 0
    while part := list(islice(rows, chunk)):
        prompts = [record_prompt(tokenizer, r, cfg.data.prompt_template) for r in part]
        check_prompt_positions(dist.unwrap(model), tokenizer, prompts, what="data",
                               names=[str(r.get("id", start + i)) for i, r in enumerate(part)])
        start += len(part)


def open_log(cfg: Config, run_dir: Path, resume_step: int, *, model=None, tokenizer=None,
             sampled: Iterable[dict] | None = None, run_files: tuple[str, ...] = rundir.RUN_FILES) -> MetricsLog:
    """The first write of a run, once every input is read and validated: check that the problems the run will
    sample from (`sampled`) fit the model, lock the run directory and write its config (`rundir.claim`; `run_files`
    as in `check_run`), then start the trackers and open the metrics log (resumed runs keep their lines up to
    `resume_step`). A run that samples problems (`sampled`: the trainers') warns when its held-out ones are its
    training ones; rm-train samples none."""
    if sampled is not None:
        check_prompts(cfg, model, tokenizer, sampled)
    rundir.claim(cfg, resume_step, run_files=run_files)
    if sampled is not None:
        warn_if_heldout_is_train(cfg.data)
    return MetricsLog(run_dir, resume_step=resume_step, trackers=trackers.start(cfg, run_dir, resume_step))


def dion_data_parallel(cfg: Config) -> bool:
    """Dion's data-parallel mode: several processes, DDP strategy, `optim.dion_sync`. The model is then not
    wrapped in DDP; the optimizer averages its thin P / R factors instead of the gradients."""
    return dist.is_dist() and cfg.optim.name == "dion" and cfg.dist.strategy == "ddp" and cfg.optim.dion_sync


def policy_and_optimizer(model: torch.nn.Module, cfg: Config):
    """Wrap `model` for the configured strategy and build its optimizer: `(model, optimizer)`; in Dion's
    data-parallel mode (`dion_data_parallel`) the model stays unwrapped and the optimizer gets the process group."""
    from reasonrl.optim import build_optimizer, comm

    dion_dp = dion_data_parallel(cfg)
    model = model if dion_dp else dist.wrap_model(model, cfg.dist.strategy)
    optimizer = build_optimizer(dist.unwrap(model), cfg.optim, process_group=comm.world_group() if dion_dp else None)
    return model, optimizer


def progress_bar(cfg: Config, total: int, initial: int, desc: str):
    """A tqdm bar on the main process when `log.progress`, else None."""
    if not (cfg.log.progress and dist.is_main()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)


def finish_run(cfg: Config, run_dir: Path, model, tokenizer, test_records: list[dict], log: MetricsLog, step: int,
               *, plot_keys: list[str], plot_name: str, bar=None) -> dict:
    """Final held-out evaluation, the final model exported to `run_dir/final`, and the plot."""
    if bar is not None:
        bar.close()
    if log.last.get("step") == step and "heldout_acc" in log.last:  # the last step was just evaluated
        final = {k: v for k, v in log.last.items() if k.startswith("heldout_")}
    else:
        final = heldout_accuracy(model, tokenizer, cfg, test_records)
        log.log({"step": step, **final})
    ckpt_lib.export_final(run_dir, model, tokenizer)
    if dist.is_main() and cfg.log.plots:
        plot_curves(read_metrics(run_dir / "metrics.jsonl"), plot_keys, run_dir / "plots" / f"{plot_name}.png",
                    title=f"{plot_name}: {run_dir.name}")
    log.close()
    if dist.is_main():
        rundir.release(run_dir)
    return {"step": step, **final, "run_dir": str(run_dir)}
