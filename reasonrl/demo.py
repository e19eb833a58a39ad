"""`make demo` / `reasonrl demo`: the main job on the embedded default, stage by stage.

world -> tokenizer -> tiny model -> SFT -> held-out evaluation, each stage writing into `run_dir` and each
later stage starting from the previous stage's output directory (the RL stage is one more entry here).
Fits in about 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path

from reasonrl.config import Config, load_config
from reasonrl.eval.report import print_rows

DEMO_DIFFICULTY = 2


def demo_config(run_dir: Path, quick: bool) -> Config:
    """SFT settings of the demo (the tiny preset on difficulty-2 problems)."""
    steps = 40 if quick else 600
    return load_config(None, [
        f"--data.difficulty={DEMO_DIFFICULTY}", "--data.num_train=20000", "--data.num_test=200",
        f"--train.steps={steps}", "--train.batch_size=32", f"--train.eval_every={steps // 3}",
        f"--train.save_every={steps // 3}", "--train.eval_examples=200",
        "--optim.lr=3e-3", "--optim.warmup_steps=30", "--rollout.max_new_tokens=96",
        f"--model.tokenizer_path={run_dir / 'tokenizer'}", f"--log.run_dir={run_dir / 'sft'}",
    ])


def run_demo(run_dir: str | Path, *, quick: bool = False) -> list[dict]:
    from reasonrl.model.setup import init_model, save_embedded_tokenizer
    from reasonrl.tasks.synthetic import write_split
    from reasonrl.train.sft import train as sft

    run_dir = Path(run_dir)
    cfg = demo_config(run_dir, quick)
    rows: list[dict] = []
    t = time.perf_counter()
    write_split(cfg.data, "train", str(run_dir / "data" / "train.jsonl"))
    write_split(cfg.data, "test", str(run_dir / "data" / "test.jsonl"))
    save_embedded_tokenizer(run_dir / "tokenizer")
    init_model(cfg, run_dir / "init")
    rows.append({"stage": "world+tokenizer+model", "heldout_acc": float("nan"), "heldout_len": float("nan"),
                 "seconds": time.perf_counter() - t})

    t = time.perf_counter()
    cfg.model.path = str(run_dir / "init")
    result = sft(cfg)
    rows.append({"stage": f"sft ({cfg.train.steps} steps)", "heldout_acc": result["heldout_acc"],
                 "heldout_len": result["heldout_len"], "seconds": time.perf_counter() - t})
    print_rows(f"demo summary (held-out: {cfg.train.eval_examples} problems, difficulty {DEMO_DIFFICULTY}, greedy)",
               rows)
    print(f"\nmodel after SFT: {run_dir / 'sft' / 'final'}   plots: {run_dir / 'sft' / 'plots'}")
    return rows
