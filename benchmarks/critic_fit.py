"""Does a critic learn something that carries to new prompts? (The diagnosis behind the *_tiny critic lr.)

    .venv/bin/python benchmarks/critic_fit.py --out critic_fit.json          # from runs/demo/sft/final, ~5 min
    .venv/bin/python benchmarks/critic_fit.py --quick --out quick.json       # 40 steps

Samples `--fit-batches` rollout batches of the SFT policy (8 prompts x 8 samples each, configs/vapo_tiny.toml's
rollout) and one more batch on other prompts, builds a fresh critic from the policy (`value_model_from_policy`)
and regresses it on the Monte-Carlo returns of the fit batches (lambda 1, as value pretraining does) with
AdamW at `--lr`, full batch, for `--steps` steps. Prints the explained variance on the fit batches and on the
fresh batch along the way. A critic whose fresh-batch explained variance stays <= 0 while the fit one rises
has memorised which prompts succeeded: its value differences then only add noise (and bias) to GAE.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from reasonrl.algo.losses import value_loss
from reasonrl.config import load_config
from reasonrl.model.tiny import load_model
from reasonrl.model.value import token_values, value_model_from_policy
from reasonrl.reward import build_reward
from reasonrl.tasks.sources import load_split
from reasonrl.train import rl
from reasonrl.train.ppo import compute_advantages

ROOT = Path(__file__).resolve().parents[1]


def rollouts(policy, tokenizer, cfg, steps: range) -> rl.Batch:
    """One batch of `len(steps)` x 8 prompts x 8 samples, returns filled with lambda-1 (Monte-Carlo) targets."""
    records = load_split(cfg.data, "train")
    # batch s reads stream position 512 s: the prompts the recorded numbers (docs/results.md) were measured on
    parts = [rl.rollout_and_score(policy, tokenizer, rl.step_prompts(records, {"prompt_cursor": 512 * s}, num=8,
                                                                     seed=0), cfg, s, build_reward(cfg))[0]
             for s in steps]
    batch = rl.concat(parts, tokenizer.pad_token_id)
    return compute_advantages(batch, torch.zeros(batch.mask.shape), cfg, pretraining=True)


def explained_var(critic, batch: rl.Batch) -> float:
    with torch.no_grad():
        values = token_values(critic, batch.input_ids, batch.attention_mask)
        return float(value_loss(values, values, batch.returns, batch.mask)[1]["explained_var"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sft-model", default=str(ROOT / "runs" / "demo" / "sft" / "final"))
    ap.add_argument("--fit-batches", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if not (Path(args.sft_model) / "config.json").is_file():
        sys.exit(f"error: {args.sft_model} is not a model directory; run `make demo` first or pass --sft-model")
    if args.quick:
        args.steps, args.every = 40, 10
    torch.manual_seed(0)
    cfg = load_config(ROOT / "configs" / "vapo_tiny.toml", ["--rl.prompts_per_step=8"])
    policy, tokenizer = load_model(args.sft_model)
    fit = rollouts(policy, tokenizer, cfg, range(args.fit_batches))
    fresh = rollouts(policy, tokenizer, cfg, range(args.fit_batches, args.fit_batches + 1))
    critic = value_model_from_policy(policy)
    opt = torch.optim.AdamW(critic.parameters(), lr=args.lr, betas=(0.9, 0.95))
    rows = []
    print(f"fit: {fit.size} responses (acc {fit.correct.float().mean():.3f}), fresh: {fresh.size}, lr {args.lr:g}")
    print(f"{'step':>5} {'value loss':>11} {'EV fit':>8} {'EV fresh':>9}")
    for step in range(args.steps + 1):
        values = token_values(critic, fit.input_ids, fit.attention_mask)
        loss, _ = value_loss(values, values.detach(), fit.returns, fit.mask)
        if step % args.every == 0:
            rows.append({"step": step, "value_loss": float(loss.detach()), "ev_fit": explained_var(critic, fit),
                         "ev_fresh": explained_var(critic, fresh)})
            r = rows[-1]
            print(f"{step:>5} {r['value_loss']:>11.3f} {r['ev_fit']:>8.3f} {r['ev_fresh']:>9.3f}", flush=True)
        loss.backward()
        opt.step()
        opt.zero_grad()
    if args.out:
        Path(args.out).write_text(json.dumps({"lr": args.lr, "steps": args.steps, "rows": rows,
                                              "ev_fit": rows[-1]["ev_fit"], "ev_fresh": rows[-1]["ev_fresh"]},
                                             indent=2) + "\n")


if __name__ == "__main__":
    main()
