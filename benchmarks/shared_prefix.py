"""Shared-prefix decoding vs plain decoding in our engine: `n` samples per prompt over prompts of growing width.

    .venv/bin/python benchmarks/shared_prefix.py --out shared_prefix.json      # widths 41 / 256 / 1024; ~3 min
    .venv/bin/python benchmarks/shared_prefix.py --quick --out quick.json      # widths 41 / 256; < 1 min

Plain decoding copies each prompt's keys and values to its `n` sample rows after the prefill, and every step
attends over each row's copy; shared-prefix decoding (`SamplingParams.share_prefix`, rollout/fast_step.py) keeps
one copy per prompt and attends over it with the queries of all its samples at once. Same model, prompts and
seed on both sides; both sample exactly `--new-tokens` tokens (ignore_eos) at temperature 1 and the script checks
that they produced the same tokens. Prompts are synthetic-world problems, widened to the target width with
worked lines of arithmetic. Rounds alternate plain / shared; the table shows the best round of each. `ratio` in
the JSON is shared / plain tokens per second at the widest prompt.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import torch
from output import finish
from rss import peak_rss_reset, peak_rss_since

from reasonrl.model.tiny import build_model, num_params
from reasonrl.model.tokenizer import train_tokenizer
from reasonrl.rollout.sampler import SamplingParams, sample
from reasonrl.tasks.prompts import format_prompt
from reasonrl.tasks.synthetic import generate as synthetic


def widen(tokenizer, prompt: str, width: int) -> str:
    """`prompt` with worked arithmetic lines appended until its chat-formatted encoding has >= `width` tokens."""
    lines, k = [prompt], 0
    while len(tokenizer.encode(format_prompt(tokenizer, "\n".join(lines)), add_special_tokens=False)) < width:
        lines.append(f"Note: {k % 90 + 10} + {k % 7 + 2} = {k % 90 + 10 + k % 7 + 2}.")
        k += 1
    return format_prompt(tokenizer, "\n".join(lines))


def run_once(model, tokenizer, prompts: list[str], params: SamplingParams) -> tuple[float, int, torch.Tensor]:
    base = peak_rss_reset()
    start = time.perf_counter()
    ro = sample(model, tokenizer, prompts, params)
    return time.perf_counter() - start, peak_rss_since(base), ro.input_ids


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="widths 41 and 256, 2 rounds")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--widths", type=int, nargs="+", default=None, help="prompt widths (default 0 256 1024; "
                    "0 = the problems as they are)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    widths = args.widths or ([0, 256] if args.quick else [0, 256, 1024])
    rounds = args.rounds or (2 if args.quick else 3)
    torch.set_num_threads(args.threads)
    records = synthetic(500, seed=0, difficulty=2)
    tokenizer = train_tokenizer([r["prompt"] + " " + r["response"] for r in records], vocab_size=512)
    model = build_model(args.preset, tokenizer, max_positions=max(widths) + args.new_tokens + 64).eval()
    params = SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens, n=args.samples, seed=0, ignore_eos=True)
    rows = []
    for width in widths:
        prompts = [widen(tokenizer, r["prompt"], width) for r in records[: args.prompts]]
        prompt_width = max(len(tokenizer.encode(p, add_special_tokens=False)) for p in prompts)
        sides = {"plain": dataclasses.replace(params, share_prefix=False),
                 "shared": dataclasses.replace(params, share_prefix=True)}
        times: dict[str, list[float]] = {k: [] for k in sides}
        peak: dict[str, int] = dict.fromkeys(sides, 0)
        outputs = {}
        for k, p in sides.items():  # warm-up
            outputs[k] = run_once(model, tokenizer, prompts, p)[2]
        assert torch.equal(outputs["plain"], outputs["shared"]), f"width {width}: the two sides sampled differently"
        for _ in range(rounds):
            for k, p in sides.items():
                seconds, mem, _ = run_once(model, tokenizer, prompts, p)
                times[k].append(seconds)
                peak[k] = max(peak[k], mem)
        tokens = args.prompts * args.samples * args.new_tokens
        row = {"prompt_width": prompt_width,
               **{f"{k}_tok_s": round(tokens / min(v), 1) for k, v in times.items()},
               **{f"{k}_peak_mb": round(peak[k] / 2**20, 1) for k in sides},
               "seconds": {k: [round(s, 4) for s in v] for k, v in times.items()}}
        row["ratio"] = round(row["shared_tok_s"] / row["plain_tok_s"], 2)
        rows.append(row)

    print(f"\n{args.preset} ({num_params(model) / 1e6:.2f}M), {args.prompts} prompts x {args.samples} samples x "
          f"{args.new_tokens} new tokens, temperature 1, {torch.get_num_threads()} thread(s), best of {rounds} rounds")
    print("| prompt width | plain tok/s | shared tok/s | shared / plain | peak MB plain | peak MB shared |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['prompt_width']} | {r['plain_tok_s']:.0f} | {r['shared_tok_s']:.0f} | {r['ratio']:.2f}x | "
              f"{r['plain_peak_mb']:.0f} | {r['shared_peak_mb']:.0f} |")
    summary = {"benchmark": "shared_prefix", "device": "cpu", "machine": platform.processor() or platform.machine(),
               "threads": torch.get_num_threads(), "preset": args.preset, "prompts": args.prompts,
               "samples": args.samples, "new_tokens": args.new_tokens, "rows": rows, "ratio": rows[-1]["ratio"]}
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
