"""Supervised fine-tuning on prompt/response pairs: loss on response tokens only.

Reads top to bottom: data -> model -> optimizer -> (resume) -> loop [batch -> loss -> update -> log -> eval
-> checkpoint] -> final model. The same code runs on one process and under `torchrun` (DDP or FSDP2): each
process takes every `world_size`-th micro-batch of one global sequence, and the loss of an optimizer step is
the token mean over the whole global batch, so N processes with accumulation A equal one process with N x A.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from reasonrl import dist
from reasonrl.config import Config
from reasonrl.eval.evaluate import heldout_accuracy
from reasonrl.model.tiny import num_params
from reasonrl.tasks.sources import load_split
from reasonrl.train import checkpoint as ckpt_lib
from reasonrl.train.data import collate, encode_records, micro_batch_indices
from reasonrl.train.grad import clip_grad_synced
from reasonrl.train.run import dion_data_parallel, finish_run, open_log, policy_and_optimizer, progress_bar, start_run
from reasonrl.train.schedule import build_scheduler


def response_nll_sum(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of -log p(token) over response tokens (targets where `loss_mask` is True)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    targets = batch["input_ids"][:, 1:].masked_fill(~batch["loss_mask"][:, 1:], -100)  # (B, T-1)
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets.flatten(), ignore_index=-100,
                           reduction="sum")


def autocast(dtype: str, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()


def train(cfg: Config, *, train_data=None, test_data=None) -> dict:
    """Run SFT as configured; returns the final metrics. Checkpoints and logs go to `cfg.log.run_dir`. `train_data`
    and `test_data` (Python records, `load_split(records=)`) replace the configured data (the API, `reasonrl.sft`)."""
    run_dir, device, resume_from, model, tokenizer = start_run(cfg)
    model.to(device).train()
    train_records = load_split(cfg.data, "train", require=("prompt", "response"), records=train_data)
    test_records = load_split(cfg.data, "test", num=cfg.train.eval_examples, records=test_data)
    examples = encode_records(tokenizer, train_records, template=cfg.data.prompt_template, max_len=cfg.data.max_len)

    # Dion's data-parallel mode: no DDP gradient all-reduce; the optimizer averages its thin factors itself.
    model, optimizer = policy_and_optimizer(model, cfg)
    dion_dp = dion_data_parallel(cfg)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.train.steps)
    sharded = dist.is_dist() and cfg.dist.strategy == "fsdp2"
    state = {"step": 0, "tokens_seen": 0}
    if resume_from:
        trainer_state, rank_state = ckpt_lib.load_trainer_state(resume_from)
        optimizer.load_state_dict(rank_state["optimizer"] if sharded else trainer_state["optimizer"])
        scheduler.load_state_dict(trainer_state["scheduler"])
        state = trainer_state["progress"]
    # the first write, every input validated; SFT samples only at held-out evaluations
    log = open_log(cfg, run_dir, state["step"], model=model, tokenizer=tokenizer, sampled=test_records)
    log_steps = ckpt_lib.log_spaced_steps(cfg.train.steps, cfg.train.log_checkpoints)
    n_params = num_params(dist.unwrap(model))
    world, accum = dist.world_size(), cfg.train.grad_accum

    def save(step: int, keep: bool) -> None:
        opt_state = ckpt_lib.optimizer_state(optimizer)
        ckpt_lib.save_checkpoint(
            run_dir, step, models={"": model}, tokenizer=tokenizer,
            trainer_state={"optimizer": None if sharded else opt_state, "scheduler": scheduler.state_dict(),
                           "progress": dict(state)},
            rank_state={"optimizer": opt_state} if sharded else None,
            meta={"params": n_params, "tokens_seen": state["tokens_seen"],
                  "compute": 6.0 * n_params * state["tokens_seen"]},
            keep=keep)

    bar = progress_bar(cfg, cfg.train.steps, state["step"], "sft")
    while state["step"] < cfg.train.steps:
        step = state["step"]
        t0 = time.perf_counter()
        batches = [
            collate([examples[i] for i in micro_batch_indices(
                step * accum * world + a * world + dist.rank(), batch_size=cfg.train.batch_size,
                num_examples=len(examples), seed=cfg.train.seed)], tokenizer.pad_token_id)
            for a in range(accum)
        ]
        # Global count of target tokens (next-token positions) in this optimizer step, over all processes.
        local_tokens = sum(int(b["loss_mask"][:, 1:].sum()) for b in batches)
        num_tokens = dist.all_reduce_sum(torch.tensor(float(local_tokens))).item()
        loss_sum = torch.zeros((), device=device)
        for b in batches:
            b = {k: v.to(device) for k, v in b.items()}
            with autocast(cfg.train.dtype, device):
                nll = response_nll_sum(model, b)
            # DDP/FSDP average gradients over processes; scale back to a global token mean.
            (nll * world / num_tokens).backward()
            loss_sum += nll.detach()
        grad_norm = clip_grad_synced(model, cfg.train.max_grad_norm, local_grads=dion_dp)
        lr = scheduler.get_last_lr()[0]
        loss = dist.all_reduce_sum(loss_sum).item() / num_tokens
        if math.isfinite(loss) and math.isfinite(grad_norm):
            optimizer.step()
            skipped = ""
        else:
            skipped = f"non-finite loss {loss} or grad norm {grad_norm}"
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        state["step"] = step + 1
        state["tokens_seen"] += int(dist.all_reduce_sum(torch.tensor(float(sum(
            int(b["attention_mask"].sum()) for b in batches)))).item())
        record = {"step": state["step"], "loss": loss, "grad_norm": grad_norm, "lr": lr,
                  "tokens_seen": state["tokens_seen"], "step_time": time.perf_counter() - t0}
        if skipped:
            record["skipped"] = skipped
        if dion_dp:
            record["dion_comm_bytes"] = optimizer.last_step_bytes
        if cfg.train.eval_every and state["step"] % cfg.train.eval_every == 0 and state["step"] < cfg.train.steps:
            record.update(heldout_accuracy(model, tokenizer, cfg, test_records))
        log.log(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", **({"acc": f"{record['heldout_acc']:.2f}"}
                                                    if "heldout_acc" in record else {}))
        is_log_step = state["step"] in log_steps
        if is_log_step or (cfg.train.save_every and state["step"] % cfg.train.save_every == 0):
            save(state["step"], keep=is_log_step)
    last = ckpt_lib.latest_checkpoint(run_dir)
    if last is None or int(last.name.split("_")[1]) != state["step"]:
        save(state["step"], keep=False)
    return finish_run(cfg, run_dir, model, tokenizer, test_records, log, state["step"],
                      plot_keys=["loss", "heldout_acc", "heldout_len"], plot_name="sft", bar=bar)
