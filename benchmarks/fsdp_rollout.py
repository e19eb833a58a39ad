"""Rollouts under FSDP2 (`dist.rollout_params`): "gathered" vs "lockstep" on 2 gloo processes on this machine's CPU,
beside each process decoding with a whole, unsharded model (what DDP does; the floor).

    python benchmarks/fsdp_rollout.py                         # tiny preset, 8 prompts x 4 samples x 64 tokens
    python benchmarks/fsdp_rollout.py --quick --out fsdp_rollout.json

Each of the 2 processes samples its own prompts with `ignore_eos` (every row makes exactly --new-tokens tokens,
so every mode decodes the same steps and lockstep adds no padding steps: what is measured is the per-step cost).
A rollout is timed from `dist.decoding_model` (the gather, for "gathered") to the end of `sample`, after one
warm-up, over --repeats rollouts (median of rank 0's times; the ranks start each rollout at a barrier).
tokens/s = tokens the 2 processes made / seconds. `param_MB` = parameter bytes a process holds as a timed rollout
starts: its shards, plus the gathered copy under "gathered" (the whole model for "unsharded"). Under "lockstep"
FSDP2 leaves the root module (embeddings, final norm, LM head) whole after a forward without gradients, so after
the warm-up its parameters count whole; each layer is whole only during its own forward (not counted).
`ratio` = lockstep seconds / gathered seconds.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import socket
import statistics
import tempfile
import time

import torch
import torch.multiprocessing as mp
from output import finish

from reasonrl import dist
from reasonrl.model.tiny import build_model
from reasonrl.model.tokenizer import train_tokenizer
from reasonrl.rollout.sampler import SamplingParams, sample
from reasonrl.tasks.synthetic import generate as synthetic

WORLD = 2
MODES = ("unsharded", "gathered", "lockstep")


def param_bytes(model: torch.nn.Module) -> int:
    """Bytes of the parameters this process holds (a DTensor's local shard)."""
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).nbytes for p in model.parameters())


def worker(rank: int, port: int, model, tokenizer, prompts: list[list[str]], args, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(args.threads)
    dist.init("gloo")
    sharded = dist.wrap_model(copy.deepcopy(model), "fsdp2")
    params = SamplingParams(temperature=1.0, n=args.samples, max_new_tokens=args.new_tokens, ignore_eos=True,
                            seed=rank)
    results = {}
    for mode in MODES:
        seconds, held = [], 0
        for i in range(args.repeats + 1):  # the first is a warm-up
            dist.barrier()
            t0 = time.perf_counter()
            if mode == "unsharded":
                decoder, lockstep, held = model, 0, param_bytes(model)
            else:
                decoder, lockstep = dist.decoding_model(sharded, mode, 1)
                held = param_bytes(sharded) + (param_bytes(decoder) if mode == "gathered" else 0)
            sample(decoder, tokenizer, prompts[rank], params, lockstep=lockstep)
            del decoder
            if i:
                seconds.append(time.perf_counter() - t0)
        results[mode] = {"seconds": statistics.median(seconds), "param_bytes": held}
    if rank == 0:
        torch.save(results, out)
    dist.destroy()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16 tokens, 2 repeats")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per process")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.new_tokens, args.repeats = 16, 2
    records = synthetic(500, seed=0, difficulty=2)
    tokenizer = train_tokenizer([r["prompt"] + " " + r["response"] for r in records], vocab_size=512)
    model = build_model(args.preset, tokenizer).eval()
    chat = [[{"role": "user", "content": r["prompt"]}] for r in records[: WORLD * args.prompts]]
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chat]
    prompts = [texts[r * args.prompts : (r + 1) * args.prompts] for r in range(WORLD)]
    with socket.socket() as s, tempfile.TemporaryDirectory() as tmp:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        out = os.path.join(tmp, "results.pt")
        mp.start_processes(worker, args=(port, model, tokenizer, prompts, args, out), nprocs=WORLD,
                           start_method="fork")
        results = torch.load(out)
    tokens = WORLD * args.prompts * args.samples * args.new_tokens
    print(f"{args.preset}, {WORLD} gloo processes x {args.prompts} prompts x {args.samples} samples x "
          f"{args.new_tokens} tokens, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    print(f"{'mode':<10} {'seconds':>9} {'tokens/s':>9} {'param_MB':>9}")
    rows = {}
    for mode, r in results.items():
        rows[mode] = {"seconds": r["seconds"], "tokens_per_s": tokens / r["seconds"],
                      "param_MB": r["param_bytes"] / 2**20}
        print(f"{mode:<10} {r['seconds']:>9.3f} {rows[mode]['tokens_per_s']:>9.0f} {rows[mode]['param_MB']:>9.2f}")
    ratio = results["lockstep"]["seconds"] / results["gathered"]["seconds"]
    print(f"lockstep / gathered seconds: {ratio:.2f}")
    summary = {"preset": args.preset, "world": WORLD, "prompts_per_process": args.prompts, "samples": args.samples,
               "new_tokens": args.new_tokens, "repeats": args.repeats, "modes": rows, "ratio": ratio}
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
