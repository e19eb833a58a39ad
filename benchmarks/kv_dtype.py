"""Attention of one decode step over an fp32 vs a bf16 KV cache, on the shapes of the tiny and small presets.

    .venv/bin/python benchmarks/kv_dtype.py --out kv_dtype.json
    .venv/bin/python benchmarks/kv_dtype.py --quick

A bf16 cache halves the bytes attention reads per step; whether that pays depends on the hardware doing bf16
arithmetic. Three ways are timed, alternating, in process CPU time: fp32 SDPA over an fp32 cache (what the engine
does), bf16 SDPA over a bf16 cache (query cast to bf16), and fp32 SDPA over a bf16 cache cast up each step.
`ratio` = fp32 time / best bf16 time (above 1: bf16 pays).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F
from output import finish

# (name, batch, heads, cache columns, head dim): tiny and small at batch 64, mid-way through 40 + 128 tokens
SHAPES = [("tiny", 64, 4, 104, 32), ("small", 64, 5, 104, 64)]


def variants(b: int, h: int, s: int, d: int) -> dict:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=g) for n in (1, s, s))
    mask = torch.zeros(b, 1, 1, s)
    kb, vb, qb, mb = k.bfloat16(), v.bfloat16(), q.bfloat16(), mask.bfloat16()
    return {
        "fp32": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        "bf16": lambda: F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mb).float(),
        "bf16 cache, fp32 math": lambda: F.scaled_dot_product_attention(q, kb.float(), vb.float(), attn_mask=mask),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls per round (a few seconds)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    calls = 50 if args.quick else 300
    rows = []
    for name, *shape in SHAPES:
        fns = variants(*shape)
        best = dict.fromkeys(fns, float("inf"))
        for _ in range(args.rounds):
            for key, fn in fns.items():
                start = time.process_time()
                for _ in range(calls):
                    fn()
                best[key] = min(best[key], (time.process_time() - start) / calls * 1e3)
        ratio = best["fp32"] / min(best["bf16"], best["bf16 cache, fp32 math"])
        rows.append({"shape": name, "batch_heads_cols_dim": shape, "ms": {k: round(v, 3) for k, v in best.items()},
                     "ratio": round(ratio, 2)})
    bf16_hw = torch.backends.cpu.get_cpu_capability()
    print(f"\nCPU capability {bf16_hw}, 1 thread, best of {args.rounds} rounds of {calls} calls (ms per call)")
    print("| shape | fp32 | bf16 | bf16 cache, fp32 math | fp32 / best bf16 |")
    print("|---|---|---|---|---|")
    for r in rows:
        ms = r["ms"]
        print(f"| {r['shape']} | {ms['fp32']:.3f} | {ms['bf16']:.3f} | {ms['bf16 cache, fp32 math']:.3f} "
              f"| {r['ratio']:.2f}x |")
    summary = {"benchmark": "kv_dtype", "device": "cpu", "capability": bf16_hw,
               "machine": platform.processor() or platform.machine(), "results": rows,
               "ratio": min(r["ratio"] for r in rows)}
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
