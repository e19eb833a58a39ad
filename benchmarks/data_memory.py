"""Peak memory of reading a million-row parquet file of prompts the way the trainers do, vs reading it into lists.

    .venv/bin/python benchmarks/data_memory.py --out data_memory.json   # 1,000,000 rows; ~8 min on 2 cores
    .venv/bin/python benchmarks/data_memory.py --quick                  # 200,000 rows, no prompt check; < 1 min

Writes a parquet file of synthetic-world-like prompts (prompt, answer) to a fresh folder under /tmp, then measures
each way of reading it in a fresh process (peak resident memory above that process's imports, `rss.py`):

- `hf first read`: `sources.load_split` on the parquet file the first time: `datasets` converts it into its Arrow
  cache ($HF_DATASETS_CACHE, under the same /tmp folder here), then maps it.
- `hf lazy read`: the same call once cached, what every later run (and every rank) pays, plus what a trainer does
  with the records: `len`, 10,000 random `records[i]` (the RL prompt stream) and one full pass in order (what
  `run.check_prompts` reads).
- `hf lazy read + run.check_prompts` (not under `--quick`): the trainers' check that every prompt fits the model
  (chat template and tokenizer on every prompt, 4,096 at a time), with the embedded world's tokenizer and a micro
  model.
- `python list (pyarrow)`: the peer: `pyarrow.parquet.read_table(...).to_pylist()`, every row a Python dict.
- `jsonl loader (list)`: the same rows as JSONL through the JSONL loader (what a user had to do before).

`ratio` = peak of the peer (python list) / peak of the lazy read. Timings are for orientation only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from output import finish  # noqa: E402

NAMES = ["Ana", "Ben", "Eva", "Dan", "Hugo", "Mia", "Tom", "Zoe"]
THINGS = ["pens", "cards", "coins", "marbles", "stamps", "shells"]


def write_parquet(path: Path, rows: int, seed: int = 0) -> None:
    """`rows` word problems (prompt, answer), written in row groups of 100,000 so the writer stays small too."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        a, b, c = rng.integers(2, 99, n), rng.integers(1, 50, n), rng.integers(1, 50, n)
        who, what = rng.integers(0, len(NAMES), n), rng.integers(0, len(THINGS), n)
        prompts = [f"{NAMES[w]} has {x} {THINGS[t]}. They buy {y} more and give away {z}. How many {THINGS[t]} "
                   f"does {NAMES[w]} have now?" for w, t, x, y, z in zip(who, what, a, b, c, strict=True)]
        table = pa.table({"prompt": prompts, "answer": [str(x + y - z) for x, y, z in zip(a, b, c, strict=True)]})
        writer = writer or pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table)
    writer.close()


def measure(mode: str, path: str) -> dict:
    """One way of reading `path`, in this (fresh) process: peak RSS above what the same read of a 100-row file
    costs (imports and first-use set-up, reported as `warmup_mb`), seconds, records read."""
    import random

    from rss import peak_rss_reset, peak_rss_since

    if mode == "check":  # the embedded world's tokenizer and a micro model, built before the measurement
        from reasonrl.config import load_config
        from reasonrl.model.tiny import build_model
        from reasonrl.model.tokenizer import train_tokenizer
        from reasonrl.tasks import synthetic
        from reasonrl.train.run import check_prompts

        tokenizer = train_tokenizer([r["prompt"] + "\n" + r["response"] for r in synthetic.generate(600, seed=0)])
        model, cfg = build_model("micro", tokenizer), load_config(None, [])

    def read(file: str):
        if mode == "list":
            import pyarrow.parquet as pq

            return pq.read_table(file).to_pylist()
        from reasonrl.config import load_config
        from reasonrl.tasks.sources import load_split

        return load_split(load_config(None, [f"--data.source={file}"]).data, "train")

    small = Path(tempfile.mkdtemp(prefix="warmup_", dir=Path(path).parent)) / f"small{Path(path).suffix}"
    if small.suffix == ".parquet":
        write_parquet(small, 100)
    else:
        small.write_text("".join(Path(path).open().readline() for _ in range(1)) * 100)
    base = peak_rss_reset()
    records = read(str(small))
    if mode == "check":
        check_prompts(cfg, model, tokenizer, records)
    warmup = peak_rss_since(base)
    base = peak_rss_reset()
    start = time.perf_counter()
    records = read(path)
    touched = len(records)
    if mode == "check":
        check_prompts(cfg, model, tokenizer, records)
    if mode == "lazy":
        rng = random.Random(0)
        touched += sum(len(records[rng.randrange(len(records))]["prompt"]) > 0 for _ in range(10_000))
        touched += sum(1 for _ in records)
    return {"peak_mb": round(peak_rss_since(base) / 2**20, 1), "seconds": round(time.perf_counter() - start, 2),
            "warmup_mb": round(warmup / 2**20, 1), "num_records": len(records), "type": type(records).__name__,
            "touched": touched}


def _child(mode: str, path: Path, cache: Path) -> dict:
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                       env=env, timeout=1800)
    if r.returncode:
        raise SystemExit(f"{mode} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="200,000 rows")
    ap.add_argument("--out", help="write the headline figures as JSON")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return {}
    rows = 200_000 if args.quick else args.rows
    work = Path(tempfile.mkdtemp(prefix="reasonrl_data_memory_", dir="/tmp"))
    path = work / "prompts.parquet"
    write_parquet(path, rows)
    import pyarrow.parquet as pq

    jsonl = work / "prompts.jsonl"
    with jsonl.open("w") as f:
        for batch in pq.ParquetFile(str(path)).iter_batches(100_000):
            f.writelines(json.dumps(r) + "\n" for r in batch.to_pylist())
    results = {"hf first read": _child("first", path, work / "hf_cache"),
               "hf lazy read": _child("lazy", path, work / "hf_cache")}
    if not args.quick:  # minutes: the toy tokenizer takes ~0.3 ms a prompt on this CPU
        results["hf lazy read + run.check_prompts"] = _child("check", path, work / "hf_cache")
    results["python list (pyarrow)"] = _child("list", path, work / "hf_cache")
    results["jsonl loader (list)"] = _child("first", jsonl, work / "hf_cache")
    file_mb = path.stat().st_size / 2**20
    cache_mb = sum(p.stat().st_size for p in (work / "hf_cache").rglob("*.arrow")) / 2**20
    print(f"\n{rows:,} rows; parquet {file_mb:.1f} MB, its Arrow cache {cache_mb:.1f} MB, JSONL "
          f"{jsonl.stat().st_size / 2**20:.1f} MB\n")
    print("| read | records | peak RSS (MB) | / parquet size | seconds | first-use set-up (MB) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['type']} of {r['num_records']:,} | {r['peak_mb']:.1f} | {r['peak_mb'] / file_mb:.2f}x "
              f"| {r['seconds']:.1f} | {r['warmup_mb']:.1f} |")
    ratio = results["python list (pyarrow)"]["peak_mb"] / max(results["hf lazy read"]["peak_mb"], 0.1)
    print(f"\nratio (python list / hf lazy read peak): {ratio:.1f}x")
    shutil.rmtree(work)
    summary = {"rows": rows, "parquet_mb": round(file_mb, 1), "arrow_cache_mb": round(cache_mb, 1),
               "results": results, "ratio": round(ratio, 1)}
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
