"""Multi-step tool-use evaluation (`reasonrl eval --tools`): run episodes on held-out questions and report
accuracy (the outcome judge against the gold answer), steps used, tool errors and the mean process score
(the paper's Table 3 metric: the share of steps the process judge labels GOOD)."""

from __future__ import annotations

import json

from reasonrl.config import Config
from reasonrl.rollout.sampler import SamplingParams
from reasonrl.swirl.episodes import final_answer, run_episodes
from reasonrl.swirl.judges import label, program_outcome_judge, program_process_judge
from reasonrl.swirl.worlds import build_world, step_limit, task_questions, world_tools


def summarize(labelled: list[dict]) -> dict:
    """Accuracy, mean steps, tool errors per episode, answered fraction and mean process score."""
    n = max(1, len(labelled))
    steps = [len(t["steps"]) for t in labelled]
    errors = [sum(1 for s in t["steps"] if (s["result"] or "").startswith("error")) for t in labelled]
    labels = [p for t in labelled for p in t["process"]]
    return {"num_episodes": len(labelled), "accuracy": sum(t["outcome"] > 0.5 for t in labelled) / n,
            "answered": sum(final_answer(t) is not None for t in labelled) / n, "mean_steps": sum(steps) / n,
            "tool_errors": sum(errors) / n, "process_score": sum(labels) / max(1, len(labels))}


def evaluate_tools(model, tokenizer, cfg: Config, records: list[dict], tools, *, seed: int = 0) -> tuple[dict, list]:
    """Episodes on `records` (one per record, `rollout.temperature`; 0 = greedy), labelled by the toy worlds'
    exact judges (accuracy is exact-match, not a noisy judge). Returns (summary, labelled episodes)."""
    params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                            max_new_tokens=cfg.swirl.step_tokens, seed=seed)
    episodes = run_episodes(model, tokenizer, records, tools=tools, max_steps=step_limit(cfg.swirl), params=params,
                            template=cfg.data.prompt_template or "{prompt}", batch_size=cfg.rollout.batch_size)
    rows = [{**r, **e} for r, e in zip(records, episodes, strict=True)]
    labelled = label(rows, program_process_judge(), program_outcome_judge())
    return summarize(labelled), labelled


def eval_tools_command(cfg: Config, *, out_dir: str | None = None, overwrite: bool = False) -> dict:
    """`reasonrl eval --tools`: the `swirl.task` test questions (first `eval.max_examples`), summary printed and
    written with the episodes to `<out>/summary.json` and `<out>/episodes.jsonl` (the output is checked first, as
    `reasonrl eval`'s: an earlier evaluation there is replaced only with `overwrite`)."""
    from reasonrl.eval.evaluate import check_eval_out, write_eval
    from reasonrl.eval.report import print_table
    from reasonrl.model.setup import load_or_build
    from reasonrl.outputs import jsonl_text

    out = check_eval_out(cfg, out_dir, overwrite=overwrite)
    index, people = build_world(cfg.swirl)
    records = task_questions(cfg.swirl, people, "test", num=cfg.eval.max_examples or None)
    model, tokenizer = load_or_build(cfg)
    summary, labelled = evaluate_tools(model, tokenizer, cfg, records, world_tools(index), seed=cfg.train.seed)
    summary = {"task": cfg.swirl.task, "model": cfg.model.path or f"fresh {cfg.model.preset}", **summary}
    write_eval(out, {"episodes.jsonl": jsonl_text(labelled),
                     "summary.json": json.dumps(summary, indent=2) + "\n"})
    print_table(f"eval --tools: {cfg.swirl.task}", summary)
    return summary
