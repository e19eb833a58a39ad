"""Compile time of the decode step (`rollout.compile`) in a fresh process, with a cold and then a warm inductor
on-disk cache.

    .venv/bin/python benchmarks/compile_cache.py --out compile_cache.json    # ~1-2 min

Runs the same child process twice against a new, empty `TORCHINDUCTOR_CACHE_DIR`: the first compiles from
scratch (FX graph cache miss), the second finds inductor's compiled graph on disk (hit) and pays only dynamo's
tracing and the rest of the pipeline. The child samples 2 prompts x 4 tokens twice with `compile=True` on the
given preset and reports its first call (compile + run), its second call (run) and inductor's cache counters.
`ratio` = cold compile seconds / warm compile seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from output import finish

CHILD = """
import json, sys, time, torch
from torch._dynamo.utils import counters
from reasonrl.model.setup import build_tokenizer
from reasonrl.model.tiny import build_model
from reasonrl.rollout.sampler import SamplingParams, sample
torch.set_num_threads(1)
tok = build_tokenizer(); model = build_model(sys.argv[1], tok).eval()
prompts = ["<|user|> 1 + 2 = ?", "<|user|> what is 3 * 4 ?"]
times = []
for _ in range(2):
    start = time.perf_counter()
    sample(model, tok, prompts, SamplingParams(max_new_tokens=4, compile=True))
    times.append(time.perf_counter() - start)
print(json.dumps({"first_s": times[0], "second_s": times[1], "inductor": dict(counters["inductor"])}))
"""


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--quick", action="store_true", help="same run (it is already short)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            out = subprocess.run([sys.executable, "-c", CHILD, args.preset], env=env, capture_output=True, text=True,
                                 check=True).stdout.strip().splitlines()[-1]
            runs.append({"cache": label, **json.loads(out)})
    print(f"\n{args.preset}: compile time of the decode step in a fresh process (first call - second call)")
    print("| inductor cache | first call s | second call s | compile s | fx graph cache hit / miss |")
    print("|---|---|---|---|---|")
    for r in runs:
        c = r["inductor"]
        r["compile_s"] = r["first_s"] - r["second_s"]
        print(f"| {r['cache']} | {r['first_s']:.1f} | {r['second_s']:.2f} | {r['compile_s']:.1f} "
              f"| {c.get('fxgraph_cache_hit', 0)} / {c.get('fxgraph_cache_miss', 0)} |")
    summary = {"benchmark": "compile_cache", "preset": args.preset, "runs": runs,
               "ratio": round(runs[0]["compile_s"] / runs[1]["compile_s"], 2)}
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
