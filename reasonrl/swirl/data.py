"""Synthetic trajectories -> labels -> the four filtered data sets, as step-wise SFT pairs and RL states.

`reasonrl swirl-data` (= `swirl_data_command`) writes, under its output directory:

    trajectories.jsonl        N trajectories per question (resumable: rerun with --resume to continue)
    labelled.jsonl            each with `process` (P(GOOD) per step) and `outcome` (P(YES))
    sft_<filter>.jsonl        one (state, action) pair per step of the kept trajectories: SFT data
    states_<filter>.jsonl     the states of the kept trajectories: `data.source` for step-wise RL
    summary.json              counts per filter and the overlap: process-kept trajectories that fail outcome
    settings.json             what determines them (`data_settings`); --resume refuses other settings

for filter in none / process / outcome / both. A trajectory with k actions gives k rows in each file (§2.1).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.outputs import write_atomic, write_jsonl
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


DATA_FILES = ("trajectories.jsonl", "labelled.jsonl", *(f"{kind}_{name}.jsonl" for kind in ("sft", "states")
                                                             for name in FILTERS), "summary.json")
SETTINGS = "settings.json"
"""Beside the data: the settings that determine it (`data_settings`); `--resume` must match them."""


def check_args(cfg: Config, *, source: str, num_questions: int, num_per_question: int, mistake_rate: float) -> None:
    """The command line's own numbers, in range (one UserError line)."""
    if num_questions < 0:
        raise UserError(f"swirl-data: --num-questions must be >= 0 (0: all), got {num_questions}")
    if num_per_question < 1:
        raise UserError(f"swirl-data: --num-per-question must be >= 1, got {num_per_question}")
    if not 0.0 <= mistake_rate <= 1.0:  # NaN fails too
        raise UserError(f"swirl-data: --mistake-rate must lie in [0, 1], got {mistake_rate}")
    if source == "model" and not cfg.model.path:
        raise UserError("swirl-data --source model needs --model.path (the policy that writes the trajectories)")
    from reasonrl.model.tiny import check_model_dir  # the settings fingerprint these: they must be there

    if source == "model":
        check_model_dir(cfg.model.path)
    if cfg.swirl.judge != "program":
        check_model_dir(cfg.swirl.judge, "swirl.judge")


def data_settings(cfg: Config, *, source: str, num_questions: int, num_per_question: int, mistake_rate: float
                  ) -> dict:
    """What determines the trajectories and their labels: the world, the judge, and the writer (the scripted
    policy's mistake rate, or the sampled model's weights and sampling). Models by weights, not by path."""
    from reasonrl.outputs import fingerprint

    sw = cfg.swirl
    out = {"source": source, "num_questions": num_questions, "num_per_question": num_per_question,
           **{f"swirl.{k}": getattr(sw, k) for k in ("task", "kb_people", "kb_seed", "hotpotqa", "result_chars",
                                                     "math_difficulty", "max_steps", "judge_noise")},
           "swirl.judge": sw.judge if sw.judge == "program" else f"weights {fingerprint(sw.judge)}",
           "train.seed": cfg.train.seed}
    if source == "scripted":
        out["mistake_rate"] = mistake_rate
    else:
        out.update({"model.path": f"weights {fingerprint(cfg.model.path)}", "swirl.step_tokens": sw.step_tokens,
                    "rollout.temperature": cfg.rollout.temperature, "rollout.top_p": cfg.rollout.top_p,
                    "rollout.batch_size": cfg.rollout.batch_size, "data.prompt_template": cfg.data.prompt_template})
    return out


def swirl_data_command(cfg: Config, *, out: str, source: str, num_questions: int, num_per_question: int,
                       mistake_rate: float, resume: bool = False, overwrite: bool = False) -> dict:
    """Generate (scripted, or sampled from `model.path`), label with `swirl.judge`, filter, decompose, write.

    Every check comes first: the numbers, the output directory (`reasonrl.outputs`: writable, not an input; one
    holding earlier data only with `--resume` and the same settings, or `--overwrite`), the world's questions, the
    judges and the model. Only then is an `--overwrite`'n output removed and `settings.json` written."""
    from reasonrl.outputs import check_output_dir, check_settings, write_settings

    check_args(cfg, source=source, num_questions=num_questions, num_per_question=num_per_question,
               mistake_rate=mistake_rate)
    out_dir = check_output_dir(out, "swirl-data --out", owns=(*DATA_FILES, SETTINGS),
                               inputs=[("model.path", cfg.model.path), ("swirl.judge", cfg.swirl.judge)])
    settings = data_settings(cfg, source=source, num_questions=num_questions, num_per_question=num_per_question,
                             mistake_rate=mistake_rate)
    check_settings(out_dir, out_dir / SETTINGS, settings, what="swirl-data --out", resume=resume,
                   overwrite=overwrite, exists=any((out_dir / n).exists() for n in DATA_FILES))
    index, people = build_world(cfg.swirl)
    tools = world_tools(index)
    records = task_questions(cfg.swirl, people, "train", num=num_questions or None)
    process, outcome = build_judges(cfg.swirl.judge, noise=cfg.swirl.judge_noise, seed=cfg.train.seed)
    if source == "scripted":
        def episode_fn(recs, seed):
            return scripted_episodes(recs, seed, tools=tools, people=people, mistake_rate=mistake_rate)
    else:
        from reasonrl.model.tiny import load_model

        model, tokenizer = load_model(cfg.model.path)
        episode_fn = model_episodes(model, tokenizer, cfg, tools)
    if overwrite:  # every check passed: the old data goes now
        for name in (*DATA_FILES, SETTINGS):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_settings(out_dir / SETTINGS, settings)
    trajectories = generate_trajectories(out_dir / "trajectories.jsonl", records, num_per_question=num_per_question,
                                         episode_fn=episode_fn, progress=cfg.log.progress)
    labelled = label(trajectories, process, outcome)
    write_jsonl(out_dir / "labelled.jsonl", labelled)
    counts = write_filtered(out_dir, labelled)
    summary = {"trajectories": len(trajectories), "questions": len(records), "filters": counts,
               "overlap": overlap(labelled)}
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"swirl-data: {len(trajectories)} trajectories of {len(records)} {cfg.swirl.task} questions -> {out_dir}")
    print(f"{'filter':<10}{'trajectories':>14}{'steps':>8}")
    for name, c in counts.items():
        print(f"{name:<10}{c['trajectories']:>14}{c['steps']:>8}")
    ov = summary["overlap"]
    print(f"process-kept that fail outcome: {ov['process_kept_outcome_no']} of {ov['process_kept']} "
          f"({ov['fraction']:.1%})")
    return summary
