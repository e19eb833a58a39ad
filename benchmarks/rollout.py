"""Rollout engine (`reasonrl.rollout.sample`) vs `model.generate`: same model, batch and sampling settings.

    .venv/bin/python benchmarks/rollout.py                  # tiny and small presets, 64 sequences x 128 tokens
    .venv/bin/python benchmarks/rollout.py --quick --out bench.json
    .venv/bin/python benchmarks/rollout.py --compile        # + the engine with rollout.compile, compile time apart
    .venv/bin/python benchmarks/rollout.py --scaling        # tiny / small / medium x batch 8 / 64 / 256
    .venv-vllm/bin/python benchmarks/rollout.py --quick     # + vLLM as a column (`make vllm-env`)

Headline rows ("fixed"): both sample at temperature 1 with no top-k / top-p and both ignore EOS, so every
sequence gets exactly `--new-tokens` tokens and both do the same work (`generate` with `eos_token_id=None`, the
engine with `ignore_eos=True`). The extra "eos" row (full run only) is the RL-like case: the model's lm_head
gets a bias on EOS so a sample ends after about `--eos-mean-length` tokens, both stop at EOS, and tokens/s
counts the tokens actually produced (`generate` keeps stepping finished rows until the longest one ends; the
engine drops them).

Rounds alternate generate / engine so background load hits both alike; the table reports the best round of
each (tokens/s = generated tokens / wall seconds) and `ratio` = engine / generate, plus the same ratio in process
CPU time (`cpu_ratio`), which background load on a shared machine disturbs less. One CPU thread by default
(`--threads`): on a busy 2-core machine a second thread mostly adds waiting. `--profile` prints the top
operators of one run of each (torch.profiler), which is how we found where time goes. Extra columns (compiled
engine, vLLM) are compared with the eager engine; peak MB is the process's peak resident memory above its level
at the start of a round (Linux `clear_refs`), the largest over the rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import platform
import time
from collections.abc import Callable

import torch
from output import finish
from profiling import kernel_seconds
from rss import peak_rss_reset, peak_rss_since

from reasonrl.model.tiny import build_model, num_params
from reasonrl.model.tokenizer import train_tokenizer
from reasonrl.rollout.sampler import SamplingParams, sample
from reasonrl.tasks.synthetic import generate as synthetic

Runner = Callable[[], int]  # runs once, returns the number of generated tokens


def setup(preset: str, batch: int):
    records = synthetic(max(500, batch), seed=0, difficulty=2)
    tokenizer = train_tokenizer([r["prompt"] + " " + r["response"] for r in records], vocab_size=512)
    model = build_model(preset, tokenizer).eval()
    chat = [[{"role": "user", "content": r["prompt"]}] for r in records[:batch]]
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chat]
    return model, tokenizer, prompts


def bias_eos(model, eos_id: int, mean_length: float) -> None:
    """Give lm_head a bias on EOS so that, with near-zero logits elsewhere, P(EOS) per step is 1 / mean_length."""
    vocab = model.lm_head.weight.shape[0]
    head = torch.nn.Linear(model.config.hidden_size, vocab, bias=True)
    head.weight = model.lm_head.weight  # keep the tied weights
    with torch.no_grad():
        head.bias.zero_()
        head.bias[eos_id] = math.log((vocab - 1) / (mean_length - 1))
    model.lm_head = head


def runners(model, tokenizer, prompts: list[str], new_tokens: int, stop_at_eos: bool, *, compiled: bool = False,
            vllm: bool = False) -> dict[str, Runner]:
    """`generate` and the engine; the compiled engine (`compiled`) and vLLM (`vllm`) when asked for."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    params = SamplingParams(temperature=1.0, max_new_tokens=new_tokens, ignore_eos=not stop_at_eos, seed=0)
    eos = tokenizer.eos_token_id

    def hf_generate() -> int:
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=True, temperature=1.0, top_k=0,
                                 top_p=1.0, eos_token_id=eos if stop_at_eos else None)
        new = out[:, enc.input_ids.shape[1] :]
        if not stop_at_eos:
            assert new.shape[1] == new_tokens, "generate stopped early"
            return new.numel()
        ended = (new == eos).cumsum(dim=1)  # tokens up to and including the first EOS count
        return int(((ended == 0) | ((ended == 1) & (new == eos))).sum())

    def engine(p: SamplingParams = params) -> int:
        rollout = sample(model, tokenizer, prompts, p)
        assert stop_at_eos or bool((rollout.response_lengths == new_tokens).all()), "engine stopped early"
        return int(rollout.response_lengths.sum())

    fns = {"generate": hf_generate, "engine": engine}
    if compiled:
        fns["compiled"] = lambda: engine(dataclasses.replace(params, compile=True))
    if vllm:
        from reasonrl.rollout.vllm_backend import generate_tokens, policy_engine

        llm = policy_engine(model, tokenizer)
        ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]

        def vllm_generate() -> int:
            lengths = generate_tokens(llm, ids, params)
            assert stop_at_eos or set(lengths) == {new_tokens}, "vLLM stopped early"
            return sum(lengths)

        fns["vllm"] = vllm_generate
    return fns


def time_rounds(fns: dict[str, Runner], rounds: int, *, warm_up: bool = True
                ) -> tuple[dict[str, list[tuple[float, float, int]]], dict]:
    """(wall seconds, CPU seconds, tokens) of each round of each runner, and per runner the warm-up's wall
    seconds (for the compiled engine: the compile) and the peak memory above the start of a round (bytes)."""
    warmup = {}
    for name, fn in fns.items() if warm_up else ():  # warm-up: allocator, tokenizer tables, lazy imports, compile
        start = time.perf_counter()
        fn()
        warmup[name] = time.perf_counter() - start
    out: dict[str, list[tuple[float, float, int]]] = {name: [] for name in fns}
    peak = dict.fromkeys(fns, 0)
    for _ in range(rounds):
        for name, fn in fns.items():
            base = peak_rss_reset()
            wall, cpu = time.perf_counter(), time.process_time()
            tokens = fn()
            out[name].append((time.perf_counter() - wall, time.process_time() - cpu, tokens))
            peak[name] = max(peak[name], peak_rss_since(base))
    return out, {"warmup_s": warmup, "peak_bytes": peak}


def profile(fns: dict[str, Runner], rows: int = 12) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for name, fn in fns.items():
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        print(f"\n--- {name}: top operators by self CPU time")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def bench(preset: str, scenario: str, args, *, batch: int | None = None, new_tokens: int | None = None) -> dict:
    batch, new_tokens = batch or args.batch, new_tokens or args.new_tokens
    model, tokenizer, prompts = setup(preset, batch)
    if scenario == "eos":
        bias_eos(model, tokenizer.eos_token_id, args.eos_mean_length)
    fns = runners(model, tokenizer, prompts, new_tokens, stop_at_eos=scenario == "eos", compiled=args.compile,
                  vllm=args.vllm)
    if args.profile:
        profile(fns)
    # the scaling grid warms up on each preset's first (smallest) batch only: the big cells take minutes a run
    rounds, extra = time_rounds(fns, args.rounds, warm_up=not args.scaling or batch == min(SCALING_BATCHES))
    wall = {name: max(t / w for w, _, t in r) for name, r in rounds.items()}
    cpu = {name: max(t / c for _, c, t in r) for name, r in rounds.items()}
    row = {
        "preset": preset,
        "scenario": scenario,
        "params": num_params(model),
        "batch": batch,
        "new_tokens": new_tokens,
        "generate_tok_s": round(wall["generate"], 1),
        "engine_tok_s": round(wall["engine"], 1),
        "ratio": round(wall["engine"] / wall["generate"], 2),
        "cpu_ratio": round(cpu["engine"] / cpu["generate"], 2),
        "peak_mb": {n: round(b / 2**20, 1) for n, b in extra["peak_bytes"].items()},
        "rounds_wall_cpu_tokens": {n: [[round(w, 3), round(c, 3), t] for w, c, t in r] for n, r in rounds.items()},
    }
    for name in set(fns) - {"generate", "engine"}:  # compiled engine, vLLM: vs the eager engine
        row[f"{name}_tok_s"] = round(wall[name], 1)
        row[f"{name}_vs_engine"] = round(wall[name] / wall["engine"], 2)
        row[f"{name}_vs_engine_cpu"] = round(cpu[name] / cpu["engine"], 2)
    if "compiled" in extra["warmup_s"]:  # its warm-up is compile + one run: compile = warm-up - a steady run
        row["compile_s"] = round(extra["warmup_s"]["compiled"] - min(w for w, _, _ in rounds["compiled"]), 1)
    if args.kernels:  # the engine's matmul + attention seconds; generate's best wall time over them is a ceiling
        row["engine_kernel_s"] = kernel_seconds(fns["engine"])
        row["ratio_ceiling"] = round(min(w for w, _, _ in rounds["generate"]) / row["engine_kernel_s"], 2)
    return row


def print_table(results: list[dict], args) -> None:
    extra = [n for n in ("compiled", "vllm") if f"{n}_tok_s" in results[0]]
    head = ["preset", "scenario", "params", "batch", "new tok", "generate tok/s", "engine tok/s", "ratio",
            "ratio (CPU time)"]
    head += [c for n in extra for c in (f"{n} tok/s", f"{n} / engine", f"{n} / engine (CPU)")]
    head += [f"peak MB {n}" for n in ["generate", "engine", *extra]] + (["compile s"] if args.compile else [])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        cells = [r["preset"], r["scenario"], f"{r['params'] / 1e6:.2f}M", r["batch"], r["new_tokens"],
                 f"{r['generate_tok_s']:.0f}", f"{r['engine_tok_s']:.0f}", f"{r['ratio']:.2f}x",
                 f"{r['cpu_ratio']:.2f}x"]
        cells += [c for n in extra for c in (f"{r[f'{n}_tok_s']:.0f}", f"{r[f'{n}_vs_engine']:.2f}x",
                                              f"{r[f'{n}_vs_engine_cpu']:.2f}x")]
        cells += [f"{r['peak_mb'][n]:.0f}" for n in ["generate", "engine", *extra]]
        cells += [f"{r['compile_s']:.1f}" if "compile_s" in r else "-"] if args.compile else []
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for r in results:
        if "ratio_ceiling" in r:
            print(f"{r['preset']} {r['scenario']}: engine matmul + attention kernels {r['engine_kernel_s']:.3f} s, "
                  f"ratio ceiling (generate s / kernel s) {r['ratio_ceiling']:.2f}x")


# (preset, batch) -> new tokens per row for the scaling grid: fewer where a cell would take minutes
SCALING_PRESETS = ("tiny", "small", "medium")
SCALING_BATCHES = (8, 64, 256)
SCALING_TOKENS = {"tiny": 64, "small": 32, "medium": 8}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny preset, fixed length only, 2 rounds (under a minute)")
    ap.add_argument("--presets", nargs="+", default=None, help="model presets (default: tiny small)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--eos-mean-length", type=float, default=48.0, help="mean sample length in the eos row")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per runner (default 3, quick 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler tables first")
    ap.add_argument("--compile", action="store_true", help="add the engine with rollout.compile (inductor) as a "
                    "column; its compile time is reported apart (the warm-up minus a steady run)")
    ap.add_argument("--vllm", action=argparse.BooleanOptionalAction, default=None,
                    help="add vLLM as a column (default: when vllm is importable, e.g. in .venv-vllm)")
    ap.add_argument("--scaling", action="store_true", help="tokens/s and peak memory over presets "
                    f"{'/'.join(SCALING_PRESETS)} x batch {'/'.join(map(str, SCALING_BATCHES))}, fixed length, "
                    "1 round (new tokens per row: " + ", ".join(f"{k} {v}" for k, v in SCALING_TOKENS.items()) + ")")
    ap.add_argument("--kernels", action="store_true", help="profile one engine run: its matmul + attention "
                    "kernel seconds and the ratio ceiling (generate s / kernel s)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    presets = args.presets or (["tiny"] if args.quick else ["tiny", "small"])
    args.rounds = args.rounds or (1 if args.scaling else 2 if args.quick else 3)
    if args.vllm is None:
        args.vllm = importlib.util.find_spec("vllm") is not None
    torch.set_num_threads(args.threads)
    if args.scaling:
        presets = args.presets or list(SCALING_PRESETS)
        results = [bench(p, "fixed", args, batch=b, new_tokens=SCALING_TOKENS.get(p, args.new_tokens))
                   for p in presets for b in SCALING_BATCHES]
    else:
        cases = [(p, "fixed") for p in presets] + ([] if args.quick else [(presets[0], "eos")])
        results = [bench(preset, scenario, args) for preset, scenario in cases]
    print(f"\ntemperature 1, {torch.get_num_threads()} CPU thread(s), best of {args.rounds} rounds; tok/s = new "
          "tokens / wall s (prefill included); peak MB = peak resident memory above the round's start")
    print_table(results, args)
    fixed = [r for r in results if r["scenario"] == "fixed"]
    summary = {
        "benchmark": "rollout",
        "device": "cpu",
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "results": results,
        "ratio": min(r["ratio"] for r in fixed),  # headline: equal work, the smallest ratio over presets
        "cpu_ratio": min(r["cpu_ratio"] for r in fixed),
    }
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
