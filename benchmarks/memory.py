"""Peak memory of one RL step, measured on tiny / small / medium and projected for 0.5B-32B (issue 22).

    .venv/bin/python benchmarks/memory.py --out memory.json     # tiny, small, medium
    .venv/bin/python benchmarks/memory.py --quick               # tiny only, under a minute

Measured rows. Each runs in fresh processes forked from this one (which builds no model, so the children inherit
little): the trainers' own setup (`load_model` of a saved base, `prepare_for_training`, `build_critic`,
`fsdp.reference_model`, `policy_and_optimizer`, the critic wrapped and its AdamW) and the body of one step of
`ppo.train` (rollout -> reward -> values -> critic update -> policy update with the KL term to the reference) or
`grpo.train` (rollout -> reward -> group advantages -> policy update with KL). A warm-up step runs first (it
allocates the optimizer states); then the peak is reset and one more step measured: `peak_mb` is the process's peak
resident memory (VmHWM) during it, `base_mb` its resident memory before any model was built (interpreter, torch,
tokenizer, data), so peak_mb - base_mb is what the step's models and tensors took. Allocations of 64 KB and more are
served by mmap (`fixed_mmap_threshold`). Modes: `full` (every weight trained; the reference a frozen copy), `lora`
(r = --lora-r over every block linear; reference = the policy with adapters off; the critic's own adapters over the
shared base), `lora+ckpt` (and gradient checkpointing), all on one process; `fsdp2` and `fsdp2+lora`: the same step
as `full` / `lora` on 2 forked processes joined in a gloo group under `dist.strategy = fsdp2` (policy, critic and
reference sharded, each process sampling its half of the prompts, rollouts as `--fsdp2-rollout` says), per process
(the larger of the two). `state_mb` is the step's parameters (policy, reference, critic: each storage once) and
optimizer states counted from the tensors after the step, a process's shards under FSDP2 (`state_bytes`): what
FSDP2's 0.6x target is about.

Projected table: `memory_formula.step_memory` per GPU for Qwen2.5 0.5B / 1.5B / 7B / 32B; the same formula is
evaluated for every measured row (`formula_mb`) and compared with peak_mb - base_mb.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_lib
import socket
import tempfile
import time

import torch
from memory_formula import QWEN25, Shape, act_per_token, step_memory
from output import finish
from rl_step import forced_length
from rss import peak_rss_reset, peak_rss_since

# imported here, before any measurement forks, so that no row counts loading them
from reasonrl import dist
from reasonrl.algo.advantages import group_advantages
from reasonrl.config import Config, load_config
from reasonrl.model.setup import build_tokenizer, prepare_for_training
from reasonrl.model.tiny import PRESETS, build_model, load_model
from reasonrl.model.value import build_critic
from reasonrl.reward import build_reward
from reasonrl.tasks.synthetic import generate as synthetic
from reasonrl.train import fsdp, ppo, rl
from reasonrl.train.run import policy_and_optimizer

MB = 2**20
MMAP_THRESHOLD = 64 * 1024  # bytes: see `fixed_mmap_threshold`
MODES = ("full", "lora", "lora+ckpt")  # one process
FSDP2_MODES = {"fsdp2": "full", "fsdp2+lora": "lora"}  # 2 processes under FSDP2: the one-process mode they shard
PROCESSES = 2


def row_config(algo: str, mode: str, base_dir: str, args, rollout: str = "gathered") -> Config:
    """One step: `--prompts` x `--samples` completions of exactly `--new-tokens` tokens, one PPO epoch over one
    minibatch holding them all, a KL term to the reference (so the reference is built and used); the FSDP2 modes
    shard over the processes, rollouts `rollout` (`dist.rollout_params`)."""
    lora = [f"--model.lora_r={args.lora_r}"]
    extra = {"full": [], "lora": lora, "lora+ckpt": [*lora, "--model.gradient_checkpointing=true"],
             "fsdp2": [], "fsdp2+lora": lora}[mode]
    if mode in FSDP2_MODES:
        extra = [*extra, "--dist.strategy=fsdp2", f"--dist.rollout_params={rollout}"]
    return load_config(None, [
        f"--model.path={base_dir}", f"--rl.algo={algo}", f"--rl.prompts_per_step={args.prompts}",
        f"--rollout.num_samples={args.samples}", f"--rollout.max_new_tokens={args.new_tokens}",
        f"--rl.minibatch_size={args.prompts * args.samples}", "--rl.ppo_epochs=1", "--rl.kl_coef=0.05",
        "--rollout.temperature=1.0", "--log.progress=false", *extra])


def rl_step(cfg: Config):
    """Build the run's models as the trainers do (on one process, or sharded under FSDP2 when in a process group)
    and return `step(i)`: the body of one PPO or GRPO step; `step.models` / `step.optimizers` hold what it trains."""
    policy, tokenizer = load_model(cfg.model.path)
    prepare_for_training(policy, cfg)
    critic = build_critic(policy, cfg, None) if cfg.rl.algo == "ppo" else None  # before the policy is sharded
    ref = fsdp.reference_model(policy, cfg, torch.device("cpu"), resumed=False)
    policy, optimizer = policy_and_optimizer(policy, cfg)
    critic_opt = None
    if critic is not None:
        critic = dist.wrap_model(critic, cfg.dist.strategy)
        critic_opt = torch.optim.AdamW([p for p in critic.parameters() if p.requires_grad], lr=cfg.rl.critic_lr)
    records = synthetic(64, seed=0, difficulty=2)
    reward = build_reward(cfg)

    def step(i: int) -> None:
        seed = rl.step_seed(0, i, dist.rank())
        prompts = rl.step_prompts(records, {"prompt_cursor": i * cfg.rl.prompts_per_step},
                                  num=cfg.rl.prompts_per_step, seed=0)  # this process's share
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
        step.tokens, step.rows = int(batch.attention_mask.sum()), batch.size

    step.models = [m for m in (policy, ref, critic) if m is not None]
    step.optimizers = [o for o in (optimizer, critic_opt) if o is not None]
    return step


def state_bytes(models: list[torch.nn.Module], optimizers: list[torch.optim.Optimizer]) -> int:
    """Bytes of the models' parameters and the optimizers' states, each storage counted once (the LoRA reference is
    the policy, and on one process the LoRA critic's backbone is the policy's base); a DTensor (an FSDP2 shard)
    counts its local storage, padding included. Gradients are not counted: the step frees them (`zero_grad`)."""
    from torch.distributed.tensor import DTensor

    tensors = [p for m in models for p in m.parameters()]
    tensors += [v for o in optimizers for s in o.state.values() for v in s.values() if torch.is_tensor(v)]
    storages = {}
    for t in tensors:
        local = t.to_local() if isinstance(t, DTensor) else t
        storages[local.untyped_storage().data_ptr()] = local.untyped_storage().nbytes()
    return sum(storages.values())


def fixed_mmap_threshold(on: bool) -> None:
    """glibc serves allocations of at least 64 KB with their own mmap, returned on free (`mallopt`). Its default
    threshold rises with every freed block up to 32 MB, so the MB-sized activation tensors come from the heap, whose
    holes between small live blocks are not returned: RSS then grows with fragmentation rather than with the tensors
    alive (medium, PPO with LoRA + checkpointing: peak 2,202 MB with the default, 1,058 MB fixed; docs/benchmarks.md).
    The rows measure the tensors: fixed unless `--glibc-default`."""
    if on:
        import ctypes

        assert ctypes.CDLL("libc.so.6").mallopt(-3, MMAP_THRESHOLD) == 1, "mallopt(M_MMAP_THRESHOLD) failed"


def measure(cfg: Config, fixed_mmap: bool) -> dict:
    """This process's row: the base, then (after joining the process group, when there is one) the models, a
    warm-up step and the measured step."""
    fixed_mmap_threshold(fixed_mmap)
    base = peak_rss_reset()
    dist.init("gloo")
    step = rl_step(cfg)
    step(0)  # warm-up: optimizer states, allocator, lazy imports
    peak_rss_reset()
    start = time.perf_counter()
    step(1)
    out = {"peak_mb": peak_rss_since(0) / MB, "base_mb": base / MB, "tokens": step.tokens, "rows": step.rows,
           "seconds": time.perf_counter() - start, "state_mb": state_bytes(step.models, step.optimizers) / MB}
    dist.destroy()
    return out


def _measure_rank(queue, rank: int, world: int, port: int, cfg: Config, fixed_mmap: bool) -> None:
    """One of `world` forked processes of an FSDP2 row (a gloo group on localhost, as torchrun would set up)."""
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank))
    queue.put(measure(cfg, fixed_mmap))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_children(target, world: int, *args, timeout_s: float = 3600) -> list:
    """Run `target(queue, rank, world, *args)` in `world` forked processes; return what they put on the queue. A
    process that fails stops the others (which would wait in a collective)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(queue, rank, world, *args)) for rank in range(world)]
    for proc in procs:
        proc.start()
    results, deadline = [], time.monotonic() + timeout_s
    while len(results) < world:
        try:
            results.append(queue.get(timeout=1))
        except queue_lib.Empty:  # check that every process is still running
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"measurement processes failed (exit codes {failed}) or timed out") from None
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0, f"measurement process exited with {proc.exitcode}"
    return results


def _save_base(queue, rank: int, world: int, preset: str, out: str) -> None:
    tokenizer = build_tokenizer()
    model = build_model(preset, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    queue.put({"params": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer)})


def shape_of(preset: str, vocab: int) -> Shape:
    p = PRESETS[preset]
    return Shape(hidden=p["hidden_size"], intermediate=p["intermediate_size"], layers=p["num_hidden_layers"],
                 heads=p["num_attention_heads"], kv_heads=p["num_key_value_heads"], vocab=vocab, tied=True)


def formula_mb(shape: Shape, algo: str, mode: str, args, row: dict, processes: int = 1, rollout: str = "") -> float:
    """`step_memory`'s peak for a measured row (fp32 weights and activations, as measured), in MB: this process's
    update tokens and rollout rows, the sharding and (under FSDP2) the gathered copy of a "gathered" rollout."""
    lora_r = args.lora_r if "lora" in mode else 0
    return step_memory(shape, algo=algo, lora_r=lora_r, checkpointing="ckpt" in mode, shards=processes,
                       tokens=row["tokens"], rollout_rows=row["rows"], rollout_len=row["tokens"] // row["rows"],
                       gathered_rollout=rollout == "gathered")["peak"] / MB


# ----------------------------------------------------------------------------- tables


PROJECTION = dict(tokens=4 * 4096, rollout_rows=64, rollout_len=4096, w=4, a=2, lora_r=16)
"""Per GPU: an update minibatch of 4 sequences x 4,096 tokens, a rollout of 64 x 4,096 on the built-in engine;
weights, gradients and optimizer in fp32 (this trainer: `train.dtype = bf16` is autocast), activations and kv cache
in bf16; LoRA rank 16 over every block linear. The FSDP2 setups decode in lockstep (`dist.rollout_params`): a
"gathered" rollout adds a whole copy of the policy per GPU while it samples."""
SETUPS = [("DDP, full", dict(shards=1)), ("DDP, full + ckpt", dict(checkpointing=True)),
          ("FSDP2 x8, full", dict(shards=8)), ("FSDP2 x8, full + ckpt", dict(shards=8, checkpointing=True)),
          ("LoRA r16", dict(lora=True)), ("LoRA r16 + ckpt", dict(lora=True, checkpointing=True)),
          ("FSDP2 x8, LoRA r16 + ckpt", dict(shards=8, lora=True, checkpointing=True))]


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
    print("\n## Measured: peak RSS of one RL step (MB; fsdp2 modes: per process, the larger of the 2)")
    print("| preset | params | algo | mode | processes | rollout | tokens | peak | base | peak - base | formula | "
          "state |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['params'] / 1e6:.1f}M | {r['algo']} | {r['mode']} | {r['processes']} | "
              f"{r.get('rollout', '')} | {r['tokens']} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} | "
              f"{r['peak_mb'] - r['base_mb']:.0f} | {r['formula_mb']:.0f} | {r['state_mb']:.1f} |")


def targets(rows: list[dict]) -> dict:
    """Issue 22's two targets where the rows allow them, on the largest preset measured: PPO peak with LoRA +
    checkpointing / full fine-tuning (<= 0.5), and per algo and FSDP2 mode, 2 processes / 1 process (the mode it
    shards) for parameter + optimizer memory per process (`state_mb`; <= 0.6), with the peak above the base beside
    it."""
    def find(**kw):
        return next((r for r in rows if all(r.get(k) == v for k, v in kw.items())), None)

    out = {}
    preset = rows[-1]["preset"]
    full, lean = find(preset=preset, algo="ppo", mode="full"), find(preset=preset, algo="ppo", mode="lora+ckpt")
    if full and lean:
        out["ppo_lora_ckpt_over_full"] = {
            "preset": preset, "peak": lean["peak_mb"] / full["peak_mb"],
            "peak_minus_base": (lean["peak_mb"] - lean["base_mb"]) / (full["peak_mb"] - full["base_mb"]),
            "target": 0.5}
    for two in (r for r in rows if r["preset"] == preset and r["mode"] in FSDP2_MODES):
        one = find(preset=preset, algo=two["algo"], mode=FSDP2_MODES[two["mode"]], processes=1)
        if one:
            out.setdefault("fsdp2_two_over_one", {})[f"{two['algo']}/{two['mode']}/{two['rollout']}"] = {
                "preset": preset, "state": two["state_mb"] / one["state_mb"],
                "peak_minus_base": (two["peak_mb"] - two["base_mb"]) / (one["peak_mb"] - one["base_mb"]),
                "target": 0.6, "met": two["state_mb"] / one["state_mb"] <= 0.6}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny only (under a minute)")
    ap.add_argument("--presets", nargs="+", default=None, help="default: tiny small medium (quick: tiny)")
    ap.add_argument("--algos", nargs="+", default=["ppo", "grpo"], choices=["ppo", "grpo"])
    ap.add_argument("--modes", nargs="+", default=[*MODES, *FSDP2_MODES], choices=[*MODES, *FSDP2_MODES])
    ap.add_argument("--fsdp2-rollout", nargs="+", default=["gathered"], choices=["gathered", "lockstep"],
                    help="dist.rollout_params of the fsdp2 rows (a row each)")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--glibc-default", action="store_true",
                    help="measure with glibc's default (dynamic) mmap threshold: RSS then includes heap fragmentation")
    ap.add_argument("--out", default=None, help="write rows, projection and targets as JSON here")
    ap.add_argument("--project-only", action="store_true", help="print the projected tables only (no measuring)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    presets = [] if args.project_only else args.presets or (["tiny"] if args.quick else ["tiny", "small", "medium"])
    rows = []
    fixed_mmap = not args.glibc_default
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        for preset in presets:
            base_dir = os.path.join(tmp, preset)
            (info,) = in_children(_save_base, 1, preset, base_dir)
            shape = shape_of(preset, info["vocab"])
            for algo in args.algos:
                for mode in [m for m in args.modes if m in MODES]:
                    (r,) = in_children(_measure_rank, 1, 0, row_config(algo, mode, base_dir, args), fixed_mmap)
                    rows.append({"preset": preset, "params": info["params"], "algo": algo, "mode": mode,
                                 "processes": 1, **r, "formula_mb": formula_mb(shape, algo, mode, args, r)})
                    print(rows[-1], flush=True)
                for mode in [m for m in args.modes if m in FSDP2_MODES]:
                    for rollout in args.fsdp2_rollout:
                        cfg = row_config(algo, mode, base_dir, args, rollout)
                        ranks = in_children(_measure_rank, PROCESSES, free_port(), cfg, fixed_mmap)
                        r = max(ranks, key=lambda x: x["peak_mb"])  # the larger process
                        rows.append({"preset": preset, "params": info["params"], "algo": algo, "mode": mode,
                                     "processes": PROCESSES, "rollout": rollout, **r,
                                     "peak_mb_ranks": sorted(x["peak_mb"] for x in ranks),
                                     "formula_mb": formula_mb(shape, algo, mode, args, r, PROCESSES, rollout)})
                        print(rows[-1], flush=True)
    projected = projection("ppo") + projection("grpo")
    if rows:
        print_measured(rows)
    print_projection([r for r in projected if r["algo"] == "ppo"])
    print_projection([r for r in projected if r["algo"] == "grpo"])
    goals = targets(rows) if rows else {}
    print("\ntargets:", json.dumps(goals, indent=1))
    return finish({"rows": [{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
                   "projected": projected, "projection_setup": PROJECTION, "targets": goals, "args": vars(args)},
                  args.out)


if __name__ == "__main__":
    main()
