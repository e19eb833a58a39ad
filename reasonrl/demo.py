"""`make demo` / `reasonrl demo`: the main job on the embedded default, stage by stage.

world -> tokenizer -> tiny model -> SFT -> VAPO, with held-out evaluation after each; every stage writes
into `run_dir` and starts from the previous stage's output directory (a new stage is one more entry here).
Fits in about 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path

from reasonrl.config import Config, load_config
from reasonrl.eval.report import print_rows

DEMO_DIFFICULTY = 2


def eval_args(quick: bool) -> list[str]:
    """Held-out protocol of both stages: avg@4 at temperature 1 (the papers' avg@32 at T = 1, smaller), greedy
    beside it; 200 problems (32 with --quick)."""
    return [f"--train.eval_examples={32 if quick else 200}", "--train.eval_samples=4", "--train.eval_temperature=1.0"]


def demo_config(run_dir: Path, quick: bool) -> Config:
    """SFT settings of the demo (the tiny preset on difficulty-2 problems)."""
    steps = 40 if quick else 600
    return load_config(None, [
        f"--data.difficulty={DEMO_DIFFICULTY}", "--data.num_train=20000", "--data.num_test=200",
        f"--train.steps={steps}", "--train.batch_size=32", f"--train.eval_every={steps // 3}",
        f"--train.save_every={steps // 3}", *eval_args(quick),
        "--optim.lr=3e-3", "--optim.warmup_steps=30", "--rollout.max_new_tokens=96",
        f"--model.tokenizer_path={run_dir / 'tokenizer'}", f"--log.run_dir={run_dir / 'sft'}",
        "--train.overwrite=true",  # a demo run starts afresh, as its other stages do
    ])


def vapo_config(run_dir: Path, quick: bool) -> Config:
    """The RL stage: VAPO with all seven parts, from the SFT model (the settings of configs/vapo_tiny.toml)."""
    steps = 3 if quick else 40
    pretrain = 1 if quick else 5
    return load_config(None, [
        f"--model.path={run_dir / 'sft' / 'final'}", f"--data.difficulty={DEMO_DIFFICULTY}",
        f"--train.steps={steps}", f"--train.eval_every={max(1, (steps + pretrain) // 3)}",
        f"--train.save_every={steps}", *eval_args(quick),
        "--optim.lr=2e-5", "--optim.warmup_steps=0", "--optim.schedule=constant",
        "--rollout.num_samples=8", "--rollout.max_new_tokens=96", "--rl.algo=ppo", "--rl.prompts_per_step=16",
        "--rl.minibatch_size=64", f"--rl.value_pretrain_steps={pretrain}", "--rl.lam_critic=1.0",
        "--rl.length_adaptive=true", "--rl.alpha=1.0", "--rl.loss_agg=token-mean", "--rl.clip_high=0.28",
        "--rl.pos_nll_coef=0.1", "--rl.critic_lr=4e-5", f"--log.run_dir={run_dir / 'vapo'}", "--train.overwrite=true",
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
    rows.append({"stage": "world+tokenizer+model", "heldout_acc": float("nan"), "greedy_acc": float("nan"),
                 "heldout_len": float("nan"), "seconds": time.perf_counter() - t})

    t = time.perf_counter()
    cfg.model.path = str(run_dir / "init")
    result = sft(cfg)
    rows.append({"stage": f"sft ({cfg.train.steps} steps)", "heldout_acc": result["heldout_acc"],
                 "greedy_acc": result["heldout_acc_greedy"], "heldout_len": result["heldout_len"],
                 "seconds": time.perf_counter() - t})

    from reasonrl.train.ppo import train as ppo

    t = time.perf_counter()
    vcfg = vapo_config(run_dir, quick)
    result = ppo(vcfg)
    rows.append({"stage": f"vapo ({vcfg.rl.value_pretrain_steps}+{vcfg.train.steps} steps)",
                 "heldout_acc": result["heldout_acc"], "greedy_acc": result["heldout_acc_greedy"],
                 "heldout_len": result["heldout_len"], "seconds": time.perf_counter() - t})
    protocol = f"avg@{cfg.train.eval_samples} at temperature {cfg.train.eval_temperature:g}"
    print_rows(f"demo summary (held-out: {cfg.train.eval_examples} problems, difficulty {DEMO_DIFFICULTY}; "
               f"heldout_acc = {protocol}, greedy_acc = greedy)", rows)
    print(f"\nmodels: {run_dir / 'sft' / 'final'}, {run_dir / 'vapo' / 'final'}   "
          f"plots: {run_dir / 'sft' / 'plots'}, {run_dir / 'vapo' / 'plots'}")
    return rows
