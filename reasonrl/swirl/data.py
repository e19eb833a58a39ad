"""Synthetic trajectories -> labels -> the four filtered data sets, as step-wise SFT pairs and RL states.

`reasonrl swirl-data` (= `swirl_data_command`) writes, under its output directory:

    trajectories.jsonl        N trajectories per question (resumable: rerun the command to continue)
    labelled.jsonl            each with `process` (P(GOOD) per step) and `outcome` (P(YES))
    sft_<filter>.jsonl        one (state, action) pair per step of the kept trajectories: SFT data
    states_<filter>.jsonl     the states of the kept trajectories: `data.source` for step-wise RL
    summary.json              counts per filter and the overlap: process-kept trajectories that fail outcome

for filter in none / process / outcome / both. A trajectory with k actions gives k rows in each file (§2.1).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.swirl.episodes import decompose, generate_trajectories, run_episodes
from reasonrl.swirl.judges import FILTERS, apply_filter, build_judges, label, overlap
from reasonrl.swirl.worlds import build_world, scripted_trajectory, step_limit, task_questions, world_tools

WORLD_FIELDS = ("task", "question", "answer", "subject", "relation", "attribute", "ops")


def step_rows(trajectories: list[dict]) -> tuple[list[dict], list[dict]]:
    """(SFT rows, state rows): one of each per step of every trajectory, ids `<trajectory id>/<step>`."""
    sft, states = [], []
    for t in trajectories:
        world = {k: t[k] for k in WORLD_FIELDS if k in t}
        for i, (state, action) in enumerate(decompose(t)):
            row_id = f"{t['id']}/{i}"
            sft.append({"id": row_id, "prompt": state, "response": action, **world})
            states.append({"id": row_id, "prompt": state, **world})
    return sft, states


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Atomic write: a temporary file renamed over `path`."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def scripted_episodes(records: list[dict], seed: int, *, tools, people, mistake_rate: float) -> list[dict]:
    rng = random.Random(f"swirl-scripted|{seed}")
    return [{"prompt": r["prompt"], "finish": "answer",
             "steps": scripted_trajectory(r, tools, rng, mistake_rate=mistake_rate, people=people)} for r in records]


def model_episodes(model, tokenizer, cfg: Config, tools):
    """`episode_fn` sampling the policy at `rollout.temperature` (the synthetic-data generator, §2.1)."""
    from reasonrl.rollout.sampler import SamplingParams

    limit = step_limit(cfg.swirl)

    def run(records: list[dict], seed: int) -> list[dict]:
        params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                max_new_tokens=cfg.swirl.step_tokens, seed=cfg.train.seed + seed)
        return run_episodes(model, tokenizer, records, tools=tools, max_steps=limit, params=params,
                            template=cfg.data.prompt_template or "{prompt}", batch_size=cfg.rollout.batch_size)

    return run


def write_filtered(out: Path, labelled: list[dict]) -> dict:
    """sft_<filter>.jsonl and states_<filter>.jsonl for every filter; returns counts per filter."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in FILTERS:
        kept = apply_filter(labelled, name)
        sft, states = step_rows(kept)
        write_jsonl(out / f"sft_{name}.jsonl", sft)
        write_jsonl(out / f"states_{name}.jsonl", states)
        counts[name] = {"trajectories": len(kept), "steps": len(sft)}
    return counts


def swirl_data_command(cfg: Config, *, out: str, source: str, num_questions: int, num_per_question: int,
                       mistake_rate: float) -> dict:
    """Generate (scripted, or sampled from `model.path`), label with `swirl.judge`, filter, decompose, write."""
    if source == "model" and not cfg.model.path:
        raise UserError("swirl-data --source model needs --model.path (the policy that writes the trajectories)")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    index, people = build_world(cfg.swirl)
    tools = world_tools(index)
    records = task_questions(cfg.swirl, people, "train", num=num_questions or None)
    if source == "scripted":
        def episode_fn(recs, seed):
            return scripted_episodes(recs, seed, tools=tools, people=people, mistake_rate=mistake_rate)
    else:
        from reasonrl.model.tiny import load_model

        model, tokenizer = load_model(cfg.model.path)
        episode_fn = model_episodes(model, tokenizer, cfg, tools)
    trajectories = generate_trajectories(out_dir / "trajectories.jsonl", records, num_per_question=num_per_question,
                                         episode_fn=episode_fn, progress=cfg.log.progress)
    process, outcome = build_judges(cfg.swirl.judge, noise=cfg.swirl.judge_noise, seed=cfg.train.seed)
    labelled = label(trajectories, process, outcome)
    write_jsonl(out_dir / "labelled.jsonl", labelled)
    counts = write_filtered(out_dir, labelled)
    summary = {"trajectories": len(trajectories), "questions": len(records), "filters": counts,
               "overlap": overlap(labelled)}
    tmp = out_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out_dir / "summary.json")
    print(f"swirl-data: {len(trajectories)} trajectories of {len(records)} {cfg.swirl.task} questions -> {out_dir}")
    print(f"{'filter':<10}{'trajectories':>14}{'steps':>8}")
    for name, c in counts.items():
        print(f"{name:<10}{c['trajectories']:>14}{c['steps']:>8}")
    ov = summary["overlap"]
    print(f"process-kept that fail outcome: {ov['process_kept_outcome_no']} of {ov['process_kept']} "
          f"({ov['fraction']:.1%})")
    return summary
