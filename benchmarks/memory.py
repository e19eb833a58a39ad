"""Peak memory of one RL step, measured on tiny / small / medium and projected for 0.5B-32B (issue 22).

    .venv/bin/python benchmarks/memory.py --out memory.json     # tiny, small, medium
    .venv/bin/python benchmarks/memory.py --quick               # tiny only, under a minute

Measured rows. Each runs in a fresh process forked from this one (which builds no model, so the children inherit
little): the trainers' own setup (`load_model` of a saved base, `prepare_for_training`, `lora.reference_model`,
`build_critic`, `build_optimizer`) and the body of one step of `ppo.train` (rollout -> reward -> values -> critic
update -> policy update with the KL term to the reference) or `grpo.train` (rollout -> reward -> group advantages ->
policy update with KL). A warm-up step runs first (it allocates the optimizer states); then the peak is reset and one
more step measured: `peak_mb` is the process's peak resident memory (VmHWM) during it, `base_mb` its resident memory
before any model was built (interpreter, torch, tokenizer, data), so peak_mb - base_mb is what the step's models and
tensors took. Allocations of 64 KB and more are served by mmap (`fixed_mmap_threshold`). Modes: `full` (every weight
trained; the reference a frozen copy), `lora` (r = --lora-r over every block linear; reference = the policy with
adapters off; the critic's own adapters over the shared base), `lora+ckpt` (and gradient checkpointing), and
`fsdp2`: `torchrun --nproc_per_node 2` of this script's worker, per process. RL under FSDP2 lives on another branch
(i22f), so the fsdp2 rows measure an SFT-style step (forward, backward, AdamW step) on the RL update's batch, beside
the same step on one process (a forked child, no process group); `state_mb` is the process's parameters, gradients
and optimizer states counted from the tensors (its shards under FSDP2).

Projected table: `memory_formula.step_memory` per GPU for Qwen2.5 0.5B / 1.5B / 7B / 32B; the same formula is
evaluated for every measured row (`formula_mb`) and compared with peak_mb - base_mb.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from memory_formula import QWEN25, Shape, act_per_token, step_memory
from output import finish
from rl_step import forced_length
from rss import peak_rss_reset, peak_rss_since

# imported here, before any measurement forks, so that no row counts loading them
from reasonrl.algo.advantages import group_advantages
from reasonrl.config import Config, load_config
from reasonrl.model.lora import reference_model
from reasonrl.model.setup import build_tokenizer, prepare_for_training
from reasonrl.model.tiny import PRESETS, build_model, load_model
from reasonrl.model.value import build_critic
from reasonrl.optim import build_optimizer
from reasonrl.reward import build_reward
from reasonrl.tasks.synthetic import generate as synthetic
from reasonrl.train import ppo, rl

MB = 2**20
MMAP_THRESHOLD = 64 * 1024  # bytes: see `fixed_mmap_threshold`
MODES = ("full", "lora", "lora+ckpt")


def row_config(algo: str, mode: str, base_dir: str, args) -> Config:
    """One step: `--prompts` x `--samples` completions of exactly `--new-tokens` tokens, one PPO epoch over one
    minibatch holding them all, a KL term to the reference (so the reference is built and used)."""
    extra = {"full": [], "lora": [f"--model.lora_r={args.lora_r}"],
             "lora+ckpt": [f"--model.lora_r={args.lora_r}", "--model.gradient_checkpointing=true"]}[mode]
    return load_config(None, [
        f"--model.path={base_dir}", f"--rl.algo={algo}", f"--rl.prompts_per_step={args.prompts}",
        f"--rollout.num_samples={args.samples}", f"--rollout.max_new_tokens={args.new_tokens}",
        f"--rl.minibatch_size={args.prompts * args.samples}", "--rl.ppo_epochs=1", "--rl.kl_coef=0.05",
        "--rollout.temperature=1.0", "--log.progress=false", *extra])


def rl_step(cfg: Config):
    """Build the run's models as the trainers do and return `step(i)`: the body of one PPO or GRPO step."""
    policy, tokenizer = load_model(cfg.model.path)
    prepare_for_training(policy, cfg)
    ref = reference_model(policy)
    optimizer = build_optimizer(policy, cfg.optim)
    critic = build_critic(policy, cfg, None) if cfg.rl.algo == "ppo" else None
    critic_opt = torch.optim.AdamW([p for p in critic.parameters() if p.requires_grad], lr=cfg.rl.critic_lr) \
        if critic is not None else None
    records = synthetic(64, seed=0, difficulty=2)
    reward = build_reward(cfg)

    def step(i: int) -> None:
        seed = rl.step_seed(0, i)
        prompts = rl.step_prompts(records, {"prompt_cursor": i * cfg.rl.prompts_per_step},
                                  num=cfg.rl.prompts_per_step, seed=0)
        with forced_length():
            batch, _ = rl.rollout_and_score(policy, tokenizer, prompts, cfg, seed, reward)
        if critic is not None:
            batch = ppo.critic_advantages(critic, batch, cfg, pretraining=False, ref_model=ref)
            rl.critic_update(critic, critic_opt, batch, cfg, seed=seed)
        else:
            adv = group_advantages(batch.scores, cfg.rollout.num_samples, normalize_std=cfg.rl.group_std)  # (N,)
            batch.advantages = adv[:, None] * batch.mask
        rl.policy_update(policy, optimizer, batch, cfg, seed=seed + 1, ref_model=ref)
        assert bool((batch.lengths == cfg.rollout.max_new_tokens).all()), "a completion stopped early"
        step.tokens = int(batch.attention_mask.sum())

    return step


def fixed_mmap_threshold(on: bool) -> None:
    """glibc serves allocations of at least 64 KB with their own mmap, returned on free (`mallopt`). Its default
    threshold rises with every freed block up to 32 MB, so the MB-sized activation tensors come from the heap, whose
    holes between small live blocks are not returned: RSS then grows with fragmentation rather than with the tensors
    alive (medium, PPO with LoRA + checkpointing: peak 2,202 MB with the default, 1,058 MB fixed; docs/benchmarks.md).
    The rows measure the tensors: fixed unless `--glibc-default`."""
    if on:
        import ctypes

        assert ctypes.CDLL("libc.so.6").mallopt(-3, MMAP_THRESHOLD) == 1, "mallopt(M_MMAP_THRESHOLD) failed"


def _measure_row(queue, cfg: Config, fixed_mmap: bool) -> None:
    fixed_mmap_threshold(fixed_mmap)
    base = peak_rss_reset()
    step = rl_step(cfg)
    step(0)  # warm-up: optimizer states, allocator, lazy imports
    peak_rss_reset()
    start = time.perf_counter()
    step(1)
    queue.put({"peak_mb": peak_rss_since(0) / MB, "base_mb": base / MB, "tokens": step.tokens,
               "seconds": time.perf_counter() - start})


def in_child(target, *args):
    """Run `target(queue, *args)` in a forked process; return what it put on the queue."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(queue, *args))
    proc.start()
    result = queue.get(timeout=3600)
    proc.join()
    assert proc.exitcode == 0, f"measurement process exited with {proc.exitcode}"
    return result


def _save_base(queue, preset: str, out: str) -> None:
    tokenizer = build_tokenizer()
    model = build_model(preset, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    queue.put({"params": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer)})


def shape_of(preset: str, vocab: int) -> Shape:
    p = PRESETS[preset]
    return Shape(hidden=p["hidden_size"], intermediate=p["intermediate_size"], layers=p["num_hidden_layers"],
                 heads=p["num_attention_heads"], kv_heads=p["num_key_value_heads"], vocab=vocab, tied=True)


def formula_mb(shape: Shape, algo: str, mode: str, args, tokens: int, processes: int = 1) -> float:
    """`step_memory`'s peak for a measured row (fp32 weights and activations, as measured), in MB."""
    rows = args.prompts * args.samples
    lora_r = args.lora_r if mode.startswith("lora") else 0
    return step_memory(shape, algo="sft" if algo == "sft-step" else algo, lora_r=lora_r, checkpointing="ckpt" in mode,
                       shards=processes, tokens=tokens // processes, rollout_rows=rows,
                       rollout_len=tokens // rows)["peak"] / MB


# ----------------------------------------------------------------------------- FSDP2 (torchrun worker)


def sft_step(base_dir: str, args) -> dict:
    """One SFT-style step (forward, backward, AdamW step) on the RL update's batch shape, this process's share of
    the rows, under FSDP2 when launched by torchrun (a plain model on one process), after a warm-up step: this
    process's peak and its parameter + gradient + optimizer bytes."""
    from torch.distributed.tensor import DTensor

    from reasonrl import dist
    from reasonrl.train.sft import response_nll_sum

    fixed_mmap_threshold(not args.glibc_default)
    base = peak_rss_reset()
    dist.init("gloo")
    cfg = load_config(None, [f"--model.path={base_dir}", "--dist.strategy=fsdp2"])
    model, _ = load_model(base_dir)
    vocab = model.config.vocab_size
    model = dist.wrap_model(model.train(), "fsdp2")
    optimizer = build_optimizer(model, cfg.optim)
    rows, width = args.prompts * args.samples, args.prompt_len + args.new_tokens
    ids = torch.randint(3, vocab, (rows, width), generator=torch.Generator().manual_seed(0))
    mine = slice(dist.rank() * rows // dist.world_size(), (dist.rank() + 1) * rows // dist.world_size())
    loss_mask = torch.zeros(rows, width, dtype=torch.bool)
    loss_mask[:, args.prompt_len:] = True
    batch = {"input_ids": ids[mine], "attention_mask": torch.ones_like(ids[mine]), "loss_mask": loss_mask[mine]}

    def local_bytes(tensors) -> int:  # a DTensor (FSDP2's sharded parameter) counts its local shard
        return sum((t.to_local() if isinstance(t, DTensor) else t).numel() * t.element_size() for t in tensors)

    state = 0
    for i in range(2):
        if i == 1:
            peak_rss_reset()
        response_nll_sum(model, batch).backward()
        grads = local_bytes(p.grad for p in model.parameters() if p.grad is not None)
        optimizer.step()
        opt = local_bytes(v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim())
        state = local_bytes(model.parameters()) + grads + opt
        optimizer.zero_grad(set_to_none=True)
    return {"peak_mb": peak_rss_since(0) / MB, "base_mb": base / MB, "state_mb": state / MB,
            "processes": dist.world_size(), "tokens": rows * width}


def fsdp2_worker(base_dir: str, result: str, args) -> None:
    """The torchrun entry: `sft_step` on this rank, written to `result.rank<r>`."""
    from reasonrl import dist

    out = sft_step(base_dir, args)
    Path(f"{result}.rank{dist.rank()}").write_text(json.dumps(out))
    dist.destroy()


def _sft_step_row(queue, base_dir: str, args) -> None:
    queue.put(sft_step(base_dir, args))


def fsdp2_rows(base_dir: str, processes: int, args) -> list[dict]:
    result = os.path.join(tempfile.mkdtemp(prefix="memory-fsdp2-"), "r")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", __file__,
           "--worker", base_dir, result, "--prompts", str(args.prompts), "--samples", str(args.samples),
           "--new-tokens", str(args.new_tokens), "--prompt-len", str(args.prompt_len),
           *(["--glibc-default"] if args.glibc_default else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(Path(f"{result}.rank{rank}").read_text()) for rank in range(processes)]


# ----------------------------------------------------------------------------- tables


PROJECTION = dict(tokens=4 * 4096, rollout_rows=64, rollout_len=4096, w=4, a=2, lora_r=16)
"""Per GPU: an update minibatch of 4 sequences x 4,096 tokens, a rollout of 64 x 4,096 on the built-in engine;
weights, gradients and optimizer in fp32 (this trainer: `train.dtype = bf16` is autocast), activations and kv cache
in bf16; LoRA rank 16 over every block linear."""
SETUPS = [("DDP, full", dict(shards=1)), ("DDP, full + ckpt", dict(checkpointing=True)),
          ("FSDP2 x8, full", dict(shards=8)), ("FSDP2 x8, full + ckpt", dict(shards=8, checkpointing=True)),
          ("LoRA r16", dict(lora=True)), ("LoRA r16 + ckpt", dict(lora=True, checkpointing=True))]


def projection(algo: str) -> list[dict]:
    out = []
    for name, shape in QWEN25.items():
        s = Shape(**shape)
        for setup, opts in SETUPS:
            r = PROJECTION["lora_r"] if opts.get("lora") else 0
            m = step_memory(s, algo=algo, lora_r=r, checkpointing=opts.get("checkpointing", False),
                            shards=opts.get("shards", 1), w=PROJECTION["w"], a=PROJECTION["a"],
                            tokens=PROJECTION["tokens"], rollout_rows=PROJECTION["rollout_rows"],
                            rollout_len=PROJECTION["rollout_len"])
            act = [act_per_token(s, checkpointing=ck, lora_r=r) * PROJECTION["a"] / 1024 for ck in (False, True)]
            out.append({"model": name, "params": s.params(), "algo": algo, "setup": setup,
                        **{k: v / 2**30 for k, v in m.items()}, "act_kb_per_token": act[0],
                        "act_kb_per_token_ckpt": act[1]})
    return out


def print_projection(rows: list[dict]) -> None:
    keys = ["weights", "gradients", "optimizer", "reference", "critic", "kv_cache", "activations", "logits", "peak"]
    print(f"\n## Projected per GPU, {rows[0]['algo'].upper()} (GB)")
    print("| model | setup | " + " | ".join(keys) + " | act KB/token (no ckpt / ckpt) |")
    print("|---|---|" + "---|" * (len(keys) + 1))
    for r in rows:
        print(f"| {r['model']} | {r['setup']} | " + " | ".join(f"{r[k]:.1f}" for k in keys)
              + f" | {r['act_kb_per_token']:.0f} / {r['act_kb_per_token_ckpt']:.0f} |")


def print_measured(rows: list[dict]) -> None:
    print("\n## Measured: peak RSS of one RL step (MB; fsdp2: per process, SFT-style step)")
    print("| preset | params | algo | mode | processes | tokens | peak | base | peak - base | formula | state |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        state = f"{r['state_mb']:.1f}" if "state_mb" in r else ""
        print(f"| {r['preset']} | {r['params'] / 1e6:.1f}M | {r['algo']} | {r['mode']} | {r['processes']} | "
              f"{r['tokens']} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} | {r['peak_mb'] - r['base_mb']:.0f} | "
              f"{r['formula_mb']:.0f} | {state} |")


def targets(rows: list[dict]) -> dict:
    """Issue 22's two targets where the rows allow them, on the largest preset measured: PPO peak with LoRA +
    checkpointing / full fine-tuning (<= 0.5), and FSDP2 on 2 processes / 1 process, parameter + gradient + optimizer
    memory per process (<= 0.6)."""
    def find(**kw):
        return next((r for r in rows if all(r[k] == v for k, v in kw.items())), None)

    out = {}
    preset = rows[-1]["preset"]
    full, lean = find(preset=preset, algo="ppo", mode="full"), find(preset=preset, algo="ppo", mode="lora+ckpt")
    if full and lean:
        out["ppo_lora_ckpt_over_full"] = {
            "preset": preset, "peak": lean["peak_mb"] / full["peak_mb"],
            "peak_minus_base": (lean["peak_mb"] - lean["base_mb"]) / (full["peak_mb"] - full["base_mb"]),
            "target": 0.5}
    one, two = find(preset=preset, mode="fsdp2", processes=1), find(preset=preset, mode="fsdp2", processes=2)
    if one and two:
        out["fsdp2_two_over_one"] = {
            "preset": preset, "state": two["state_mb"] / one["state_mb"],
            "peak_minus_base": (two["peak_mb"] - two["base_mb"]) / (one["peak_mb"] - one["base_mb"]), "target": 0.6}
    return out


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny only (under a minute)")
    ap.add_argument("--presets", nargs="+", default=None, help="default: tiny small medium (quick: tiny)")
    ap.add_argument("--algos", nargs="+", default=["ppo", "grpo"], choices=["ppo", "grpo"])
    ap.add_argument("--modes", nargs="+", default=[*MODES, "fsdp2"], choices=[*MODES, "fsdp2"])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--prompt-len", type=int, default=40, help="fsdp2 rows: prompt tokens of the synthetic batch")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--glibc-default", action="store_true",
                    help="measure with glibc's default (dynamic) mmap threshold: RSS then includes heap fragmentation")
    ap.add_argument("--out", default=None, help="write rows, projection and targets as JSON here")
    ap.add_argument("--project-only", action="store_true", help="print the projected tables only (no measuring)")
    ap.add_argument("--worker", nargs=2, metavar=("BASE_DIR", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.worker:
        fsdp2_worker(*args.worker, args)
        return None
    presets = [] if args.project_only else args.presets or (["tiny"] if args.quick else ["tiny", "small", "medium"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        for preset in presets:
            base_dir = os.path.join(tmp, preset)
            info = in_child(_save_base, preset, base_dir)
            shape = shape_of(preset, info["vocab"])
            for algo in args.algos:
                for mode in [m for m in args.modes if m != "fsdp2"]:
                    r = in_child(_measure_row, row_config(algo, mode, base_dir, args), not args.glibc_default)
                    rows.append({"preset": preset, "params": info["params"], "algo": algo, "mode": mode,
                                 "processes": 1, **r, "formula_mb": formula_mb(shape, algo, mode, args, r["tokens"])})
                    print(rows[-1], flush=True)
            if "fsdp2" in args.modes:
                for processes in (1, 2):  # one process (forked, no torchrun needed), then FSDP2 over two
                    r = in_child(_sft_step_row, base_dir, args) if processes == 1 else \
                        max(fsdp2_rows(base_dir, processes, args), key=lambda x: x["peak_mb"])  # the larger rank
                    rows.append({"preset": preset, "params": info["params"], "algo": "sft-step", "mode": "fsdp2",
                                 **r, "formula_mb": formula_mb(shape, "sft-step", "full", args, r["tokens"],
                                                                processes)})
                    print(rows[-1], flush=True)
    projected = projection("ppo") + projection("grpo")
    if rows:
        print_measured(rows)
    print_projection([r for r in projected if r["algo"] == "ppo"])
    print_projection([r for r in projected if r["algo"] == "grpo"])
    goals = targets(rows) if rows else {}
    print("\ntargets:", json.dumps(goals, indent=1))
    missing = ["ppo and grpo rows under fsdp2: RL under FSDP2 is built on branch i22f (refused here); the fsdp2 rows "
               "are an SFT-style step on the RL update's batch"]
    return finish({"rows": [{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
                   "projected": projected, "projection_setup": PROJECTION, "targets": goals, "missing": missing,
                   "args": vars(args)}, args.out)


if __name__ == "__main__":
    main()
