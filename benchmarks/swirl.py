"""SWiRL at toy scale (arXiv 2504.04736; seed-papers.md E.6): {SFT, step-wise RL} x {none, process, outcome, both}.

Per task (2-hop QA over the generated knowledge base with search; arithmetic word problems with the calculator):
 1. base policy: a tiny model SFT'd on scripted trajectories with injected mistakes (both tasks, so transfer has a
    shared action grammar);
 2. synthetic data: N trajectories per training question sampled from the base policy at temperature 1;
 3. labels: the programmatic process judge (per step) and outcome judge, with label noise `--noise`;
 4. for each filter: SFT on the kept (state, action) pairs, and step-wise RL (GRPO over actions sampled at the kept
    states, reward = the process judge, KL to the base) -- both from the base policy, through the real trainers;
 5. multi-step evaluation on held-out questions (greedy): accuracy, and the mean process score (Table 3's metric).
Transfer: the QA-trained models are also evaluated on math.

    python benchmarks/swirl.py --quick                  # a check that everything runs (not a result)
    python benchmarks/swirl.py --out runs/swirl.json     # the recorded run (docs/swirl.md)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from reasonrl.config import load_config
from reasonrl.model.tiny import load_model
from reasonrl.model.tokenizer import train_tokenizer
from reasonrl.swirl.data import model_episodes, scripted_episodes, step_rows, write_filtered, write_jsonl
from reasonrl.swirl.episodes import generate_trajectories, states
from reasonrl.swirl.evaluate import evaluate_tools
from reasonrl.swirl.judges import FILTERS, build_judges, label
from reasonrl.swirl.worlds import build_world, task_questions, world_tools

SIZES = {  # quick: a check that it runs; full: sized for ~1 h on 2 busy CPU cores
    "quick": dict(people=40, qa_train=24, math_train=24, test=12, scripted=2, per_q=2, base_steps=30, sft_steps=10,
                  rl_steps=3, prompts=4, group=4),
    "full": dict(people=120, qa_train=120, math_train=120, test=48, scripted=4, per_q=4, base_steps=600,
                 sft_steps=40, rl_steps=15, prompts=8, group=4),
}


def overrides(s: dict, run_dir: Path, task: str, extra: list[str]) -> list[str]:
    return [f"--log.run_dir={run_dir}", "--log.progress=false", "--log.plots=false", "--data.prompt_template={prompt}",
            f"--swirl.task={task}", f"--swirl.kb_people={s['people']}", "--swirl.hotpotqa=true",
            "--train.eval_every=0", "--train.eval_examples=2", "--train.save_every=0", "--rollout.batch_size=64",
            "--rollout.max_new_tokens=32", "--swirl.step_tokens=32", "--swirl.result_chars=200", "--data.max_len=768",
            *extra]


def sft(s, run_dir, data, init, task, steps, lr):
    from reasonrl.train.sft import train

    fresh = ["--model.preset=tiny", f"--model.tokenizer_path={init}"]
    model = [f"--model.path={init}"] if (Path(init) / "config.json").is_file() else fresh
    cfg = load_config(None, overrides(s, run_dir, task, [*model, f"--data.source={data}", f"--train.steps={steps}",
                                                         "--train.batch_size=16", f"--optim.lr={lr}",
                                                         "--optim.warmup_steps=5"]))
    train(cfg)
    return run_dir / "final"


def rl(s, run_dir, data, init, task):
    from reasonrl.train.grpo import train

    cfg = load_config(None, overrides(s, run_dir, task, [
        f"--model.path={init}", f"--data.source={data}", f"--train.steps={s['rl_steps']}", f"--optim.lr={s['rl_lr']}",
        "--optim.warmup_steps=0", "--optim.schedule=constant", "--rl.algo=grpo",
        f"--rl.prompts_per_step={s['prompts']}",
        f"--rollout.num_samples={s['group']}", "--rl.minibatch_size=32", "--rl.kl_coef=0.05", "--reward.kind=process",
        '--rollout.stop=["</search_query>", "</math_exp>", "</answer>"]']))
    train(cfg)
    return run_dir / "final"


_EVALS: dict = {}


def evaluate(s, model_dir, task, index, people):
    """Greedy multi-step episodes on `s['test']` held-out questions of `task` (cached per model and task)."""
    key = (str(model_dir), task)
    if key not in _EVALS:
        _EVALS[key] = _evaluate(s, model_dir, task, index, people)
    return _EVALS[key]


def _evaluate(s, model_dir, task, index, people):
    cfg = load_config(None, overrides(s, Path("/tmp"), task, ["--rollout.temperature=0"]))
    model, tokenizer = load_model(model_dir)
    records = task_questions(cfg.swirl, people, "test", num=s["test"])
    summary, _ = evaluate_tools(model, tokenizer, cfg, records, world_tools(index))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="")
    p.add_argument("--work", default="runs/swirl_bench")
    p.add_argument("--noise", type=float, default=0.1, help="process / outcome judge label noise")
    p.add_argument("--rl-steps", type=int, default=0, help="step-wise RL steps (default: the size's)")
    p.add_argument("--rl-lr", type=float, default=2e-4, help="step-wise RL learning rate")
    p.add_argument("--base-steps", type=int, default=0, help="base policy SFT steps (default: the size's)")
    args = p.parse_args()
    s = {**SIZES["quick" if args.quick else "full"], "rl_lr": args.rl_lr}
    s["rl_steps"] = args.rl_steps or s["rl_steps"]
    s["base_steps"] = args.base_steps or s["base_steps"]
    rl_tag = "" if (args.rl_steps, args.rl_lr) == (0, 2e-4) else f"_{s['rl_steps']}x{args.rl_lr:g}"
    torch.set_num_threads(1)  # on a shared, oversubscribed machine more threads only spin
    t0 = time.time()
    work = Path(args.work) / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    base_cfg = load_config(None, overrides(s, work, "qa", []))
    index, people = build_world(base_cfg.swirl)
    tools = world_tools(index)
    questions = {t: task_questions(base_cfg.swirl, people, "train", task=t, num=s[f"{t}_train"])
                 for t in ("qa", "math")}
    # 1. scripted trajectories (both tasks) -> tokenizer -> base policy
    scripted = []
    for t in ("qa", "math"):
        scripted += generate_trajectories(work / f"scripted_{t}.jsonl", questions[t], num_per_question=s["scripted"],
                                          episode_fn=lambda r, seed: scripted_episodes(r, seed, tools=tools,
                                                                                       people=people,
                                                                                       mistake_rate=0.3))
    sft_rows, _ = step_rows(scripted)
    write_jsonl(work / "scripted_sft.jsonl", sft_rows)
    tok_dir = work / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        train_tokenizer([states(t)[-1] for t in scripted], vocab_size=1024).save_pretrained(tok_dir)
    base = work / "base" / "final"
    if not base.is_dir():
        sft(s, work / "base", work / "scripted_sft.jsonl", tok_dir, "qa", s["base_steps"], 3e-3)
    print(f"base policy ready ({time.time() - t0:.0f}s)")
    process, outcome = build_judges("program", noise=args.noise, seed=0)
    results = {"accuracy": {}, "process_score": {}, "data": {}, "sizes": s, "noise": args.noise}
    for task in ("qa", "math"):
        # 2-3. synthetic trajectories from the base policy, labelled and filtered
        cfg = load_config(None, overrides(s, work, task, [f"--model.path={base}"]))
        model, tokenizer = load_model(base)
        trajs = generate_trajectories(work / f"traj_{task}.jsonl", questions[task], num_per_question=s["per_q"],
                                      episode_fn=model_episodes(model, tokenizer, cfg, tools))
        labelled = label(trajs, process, outcome)
        results["data"][task] = write_filtered(work / f"data_{task}", labelled)
        acc = {"base": evaluate(s, base, task, index, people)["accuracy"], "sft": {}, "rl": {}}
        for name in FILTERS:
            if results["data"][task][name]["steps"] == 0:
                continue
            d = work / f"data_{task}"
            sft_dir = work / f"sft_{task}_{name}"
            final = sft_dir / "final" if (sft_dir / "final").is_dir() else sft(
                s, sft_dir, d / f"sft_{name}.jsonl", base, task, s["sft_steps"], 3e-4)
            acc["sft"][name] = evaluate(s, final, task, index, people)["accuracy"]
            rl_dir = work / f"rl_{task}_{name}{rl_tag}"
            final = rl_dir / "final" if (rl_dir / "final").is_dir() else rl(s, rl_dir, d / f"states_{name}.jsonl",
                                                                             base, task)
            summary = evaluate(s, final, task, index, people)
            acc["rl"][name] = summary["accuracy"]
            results["process_score"].setdefault(f"{task}_rl_by_filter", {})[name] = summary["process_score"]
            if name == "process":
                results["process_score"][task] = {"base": evaluate(s, base, task, index, people)["process_score"],
                                                  "rl": summary["process_score"]}
            if task == "qa":
                results.setdefault("transfer_qa_to_math", {"base": evaluate(s, base, "math", index, people)
                                                           ["accuracy"]})[f"rl_{name}"] = evaluate(
                    s, final, "math", index, people)["accuracy"]
            print(f"{task} {name}: sft {acc['sft'][name]:.3f} rl {acc['rl'][name]:.3f} ({time.time() - t0:.0f}s)")
        results["accuracy"][task] = acc
    results["seconds"] = time.time() - t0
    print_table(results)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def print_table(r: dict) -> None:
    print(f"\n{'task':<6}{'model':<8}" + "".join(f"{f:>10}" for f in FILTERS))
    for task, acc in r["accuracy"].items():
        print(f"{task:<6}{'base':<8}{acc['base']:>10.3f}")
        for kind in ("sft", "rl"):
            print(f"{task:<6}{kind:<8}" + "".join(f"{acc[kind].get(f, float('nan')):>10.3f}" for f in FILTERS))
    for task, ps in r["process_score"].items():
        if "base" not in ps:
            print(f"process score {task}:", {k: round(v, 3) for k, v in ps.items()})
            continue
        print(f"process score {task}: base {ps['base']:.3f} -> rl(process) {ps['rl']:.3f}")
    if "transfer_qa_to_math" in r:
        print("transfer QA -> math:", {k: round(v, 3) for k, v in r["transfer_qa_to_math"].items()})
    for task, counts in r["data"].items():
        print(f"data {task}:", {k: v["trajectories"] for k, v in counts.items()})


if __name__ == "__main__":
    main()
