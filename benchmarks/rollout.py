"""Rollout engine (`reasonrl.rollout.sample`) vs `model.generate`: same model, batch and sampling settings.

    .venv/bin/python benchmarks/rollout.py                  # tiny and small presets, 64 sequences x 128 tokens
    .venv/bin/python benchmarks/rollout.py --quick --out bench.json

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
operators of one run of each (torch.profiler), which is how we found where time goes.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable

import torch

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


def runners(model, tokenizer, prompts: list[str], new_tokens: int, stop_at_eos: bool) -> dict[str, Runner]:
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

    def engine() -> int:
        rollout = sample(model, tokenizer, prompts, params)
        assert stop_at_eos or bool((rollout.response_lengths == new_tokens).all()), "engine stopped early"
        return int(rollout.response_lengths.sum())

    return {"generate": hf_generate, "engine": engine}


def time_rounds(fns: dict[str, Runner], rounds: int) -> dict[str, list[tuple[float, float, int]]]:
    """(wall seconds, CPU seconds, tokens) of each round of each runner."""
    for fn in fns.values():  # warm-up: allocator, tokenizer tables, lazy imports
        fn()
    out: dict[str, list[tuple[float, float, int]]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            tokens = fn()
            out[name].append((time.perf_counter() - wall, time.process_time() - cpu, tokens))
    return out


def profile(fns: dict[str, Runner], rows: int = 12) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for name, fn in fns.items():
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        print(f"\n--- {name}: top operators by self CPU time")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def bench(preset: str, scenario: str, args) -> dict:
    model, tokenizer, prompts = setup(preset, args.batch)
    if scenario == "eos":
        bias_eos(model, tokenizer.eos_token_id, args.eos_mean_length)
    fns = runners(model, tokenizer, prompts, args.new_tokens, stop_at_eos=scenario == "eos")
    if args.profile:
        profile(fns)
    rounds = time_rounds(fns, args.rounds)
    wall = {name: max(t / w for w, _, t in r) for name, r in rounds.items()}
    cpu = {name: max(t / c for _, c, t in r) for name, r in rounds.items()}
    return {
        "preset": preset,
        "scenario": scenario,
        "params": num_params(model),
        "generate_tok_s": round(wall["generate"], 1),
        "engine_tok_s": round(wall["engine"], 1),
        "ratio": round(wall["engine"] / wall["generate"], 2),
        "cpu_ratio": round(cpu["engine"] / cpu["generate"], 2),
        "rounds_wall_cpu_tokens": {n: [[round(w, 3), round(c, 3), t] for w, c, t in r] for n, r in rounds.items()},
    }


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
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    presets = args.presets or (["tiny"] if args.quick else ["tiny", "small"])
    args.rounds = args.rounds or (2 if args.quick else 3)
    torch.set_num_threads(args.threads)
    cases = [(p, "fixed") for p in presets] + ([] if args.quick else [(presets[0], "eos")])
    results = [bench(preset, scenario, args) for preset, scenario in cases]
    print(f"\n{args.batch} sequences, up to {args.new_tokens} new tokens, temperature 1, "
          f"{torch.get_num_threads()} CPU thread(s), best of {args.rounds} rounds")
    print("| preset | scenario | params | generate tok/s | engine tok/s | ratio | ratio (CPU time) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['preset']} | {r['scenario']} | {r['params'] / 1e6:.2f}M | {r['generate_tok_s']:.0f} "
              f"| {r['engine_tok_s']:.0f} | {r['ratio']:.2f}x | {r['cpu_ratio']:.2f}x |")
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
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
