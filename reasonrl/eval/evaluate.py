"""Generate answers for a set of problems and score them: per-sample records and a summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from reasonrl import dist
from reasonrl.eval.metrics import summarize
from reasonrl.rollout.sampler import SamplingParams, check_prompt_positions, sample
from reasonrl.tasks.prompts import record_prompt
from reasonrl.tasks.verify import extract_answer


@torch.no_grad()
def run_eval(
    model,
    tokenizer,
    records: list[dict],
    *,
    params: SamplingParams,
    verifier: Callable[[str, str], bool],
    template: str = "",
    batch_size: int = 64,
    ks: tuple[int, ...] = (1,),
    progress: bool = False,
    lockstep: int = 0,
    reward=None,
) -> tuple[dict, list[dict]]:
    """Sample `params.n` responses per record (this rank's share under torchrun), verify, summarise.

    With `reward` (a guarded reward, `reward.check.dry_run`), each process also scores its own samples: every sample
    gets its `reward`, and the summary the mean reward and the reward's statistics (`reward/<name>` of each kind when
    there are several), response-weighted over all processes. Returns (summary, samples); every rank gets the full
    lists. `lockstep` (`dist.decoding_model`): every rank makes as many `sample` calls as the one with the most chunks
    (a rank short of one decodes a stand-in prompt and discards it), each in lockstep.
    """
    mine = records[dist.rank() :: dist.world_size()]
    stat_sums: dict = {}
    per_call = max(1, batch_size // params.n)
    samples: list[dict] = []
    was_training = model.training
    model.eval()
    check_prompt_positions(model, tokenizer, [record_prompt(tokenizer, r, template) for r in mine])
    starts = list(range(0, len(mine), per_call))
    if lockstep:
        starts += [-1] * (max(dist.all_gather_object(len(starts))) - len(starts))  # -1: a stand-in call
    chunks = starts
    if progress and dist.is_main():
        from tqdm import tqdm

        chunks = tqdm(starts, desc="eval", leave=False)
    for start in chunks:
        if start < 0:
            sample(model, tokenizer, [record_prompt(tokenizer, records[0], template)], replace(params, n=1),
                   lockstep=lockstep)
            continue
        chunk = mine[start : start + per_call]
        prompts = [record_prompt(tokenizer, r, template) for r in chunk]
        call = replace(params, seed=params.seed + start)
        out = sample(model, tokenizer, prompts, call, lockstep=lockstep)
        rewards, stat_sums = _score(reward, out, chunk, prompts, stat_sums)
        for i, text in enumerate(out.response_texts):
            rec = chunk[int(out.prompt_index[i])]
            samples.append({
                "problem_id": rec.get("id", str(start + int(out.prompt_index[i]))),
                "prompt": rec["prompt"],
                "answer": rec["answer"],
                "response": text,
                "extracted": extract_answer(text),
                "correct": bool(verifier(text, rec["answer"])),
                "length": int(out.response_lengths[i]),
                "finish_reason": out.finish_reasons[i],
                **({} if rewards is None else {"reward": rewards[i]}),
            })
    if was_training:
        model.train()
    if reward is not None:
        reward.raise_errors(None)  # a reward that failed on any process stops every process here
    samples = [s for part in dist.all_gather_object(samples) for s in part]
    for s in samples:
        s["has_answer"] = s["extracted"] is not None
    summary = summarize(samples, ks=[k for k in ks if k <= params.n])
    if reward is not None:
        from reasonrl.reward.stats import reward_stat_means

        summary = {**summary, "reward": sum(s["reward"] for s in samples) / max(1, len(samples)),
                   **reward_stat_means(stat_sums)}
    return summary, samples


def _score(reward, out, chunk: list[dict], prompts: list[str], stat_sums: dict) -> tuple[list[float] | None, dict]:
    """One sampled chunk scored by `reward` (None: not scored): each response's reward, and the statistics' sums."""
    if reward is None:
        return None, stat_sums
    from reasonrl.reward.base import Responses
    from reasonrl.reward.stats import merge_stat_sums, reward_stat_sums

    scored = reward(Responses.of_rollout(out, chunk, prompts, out.response_lengths.clone()))
    return scored.scores.tolist(), merge_stat_sums(stat_sums, reward_stat_sums(scored.stats, len(out.prompt_index)))


def heldout_accuracy(model, tokenizer, cfg, records: list[dict]) -> dict:
    """Held-out accuracy (the training-time eval) under `train.eval_*`: `heldout_acc` is the mean over
    `eval_samples` samples per problem at `eval_temperature` / `eval_top_p` (greedy by default). When the
    protocol samples, the greedy accuracy is reported beside it as `heldout_acc_greedy`."""
    from reasonrl.tasks.sources import verifier_for

    t = cfg.train
    common = dict(max_new_tokens=cfg.rollout.max_new_tokens, seed=t.seed, stop=tuple(cfg.rollout.stop))
    kwargs = dict(verifier=verifier_for(cfg.data), template=cfg.data.prompt_template,
                  batch_size=cfg.rollout.batch_size)
    records = records[: t.eval_examples]
    greedy = SamplingParams(temperature=0.0, n=1, **common)
    if t.eval_temperature > 0:
        params = SamplingParams(temperature=t.eval_temperature, top_p=t.eval_top_p, n=t.eval_samples, **common)
    else:
        params = greedy
    # under FSDP2 as `dist.rollout_params` says: one gathered copy for both protocols, or lockstep decoding
    model, kwargs["lockstep"] = dist.decoding_model(model, cfg.dist.rollout_params, cfg.dist.lockstep_sync_every)
    summary, _ = run_eval(model, tokenizer, records, params=params, **kwargs)
    out = {"heldout_acc": summary["mean@n"], "heldout_len": summary["mean_length"]}
    if params is not greedy:
        g, _ = run_eval(model, tokenizer, records, params=greedy, **kwargs)
        out["heldout_acc_greedy"] = g["mean@n"]
    return out


EVAL_FILES = ("samples.jsonl", "summary.json", "episodes.jsonl")
"""What `reasonrl eval` (and `eval --tools`) writes in its output directory besides plots/: an earlier evaluation
there is replaced only with `--overwrite`."""


def check_eval_out(cfg, out_dir: str | None, *, overwrite: bool) -> Path:
    """The output directory of `reasonrl eval` / `eval --tools` (`--out`, else `log.run_dir`), checked before any
    work (`reasonrl.outputs`): writable, not an input, and not an earlier evaluation unless `overwrite`."""
    from reasonrl.outputs import MODEL_AND_DATA, check_output_dir, check_previous, config_inputs

    what = "eval --out" if out_dir else "log.run_dir"
    inputs = config_inputs(cfg, MODEL_AND_DATA)
    out = check_output_dir(out_dir or cfg.log.run_dir, what, inputs=inputs, owns=EVAL_FILES)
    check_previous(out, what, EVAL_FILES, desc="an evaluation", overwrite=overwrite)
    return out


def write_eval(out: Path, files: dict[str, str]) -> None:
    """Write an evaluation's `files` (name -> text) atomically and remove the other EVAL_FILES an earlier
    evaluation left there (an --overwrite'd `eval --tools` and a plain `eval` do not mix)."""
    from reasonrl.outputs import write_atomic

    for name, text in files.items():
        write_atomic(out / name, text)
    for name in EVAL_FILES:
        if name not in files:
            (out / name).unlink(missing_ok=True)


def evaluate(cfg, *, out_dir: str | None = None, overwrite: bool = False, data=None,
             reward=None) -> tuple[dict, list[dict]]:
    """`reasonrl eval`: load the model and data, sample, score, and write samples.jsonl, summary.json, a plot.
    Returns (summary, samples).

    The summary table is printed; `mean@n` is accuracy averaged over all samples. With `eval.reward`, `reward.kinds`
    or `reward` (kinds and / or functions, as `build_reward(kinds=)` takes) every sample is also scored by that
    reward, after its dry call on the first records, and the mean reward stands beside accuracy. `data`: the records
    as Python objects instead of `data.source` (the API, `reasonrl.evaluate`).
    """
    import json

    from reasonrl.errors import warn
    from reasonrl.eval.plots import plot_length_vs_correct
    from reasonrl.eval.report import print_table
    from reasonrl.model.setup import load_or_build
    from reasonrl.outputs import jsonl_text
    from reasonrl.tasks.sources import load_split, verifier_for

    dist.init(cfg.dist.backend)
    out = check_eval_out(cfg, out_dir, overwrite=overwrite)  # before sampling
    too_big = [k for k in cfg.eval.pass_k if k > cfg.eval.num_samples]
    if too_big:
        warn(f"eval.pass_k {too_big} exceeds eval.num_samples {cfg.eval.num_samples}: not reported")
    model, tokenizer = load_or_build(cfg)
    model.to(dist.device())
    split = cfg.eval.split
    records = load_split(cfg.data, split, num=cfg.eval.max_examples or None, records=data)
    scorer = None
    if reward is not None or cfg.eval.reward or cfg.reward.kinds:
        from reasonrl.reward.check import dry_run
        from reasonrl.reward.combine import build_reward

        built = build_reward(cfg, tokenizer=tokenizer, device=dist.device(), kinds=reward)
        scorer = dry_run(built, records, cfg, tokenizer=tokenizer, training=False)  # a bad reward stops here
    params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                            max_new_tokens=cfg.rollout.max_new_tokens, n=cfg.eval.num_samples,
                            stop=list(cfg.rollout.stop), seed=cfg.train.seed)
    summary, samples = run_eval(model, tokenizer, records, params=params, verifier=verifier_for(cfg.data),
                                template=cfg.data.prompt_template, batch_size=cfg.rollout.batch_size,
                                ks=tuple(cfg.eval.pass_k), progress=cfg.log.progress, reward=scorer)
    source = cfg.data.source if data is None else f"{type(data).__name__} (Python data)"
    summary = {"data": source, "split": split, "model": cfg.model.path or f"fresh {cfg.model.preset}",
               "num_problems": len(records), **summary}
    if dist.is_main():
        write_eval(out, {"samples.jsonl": jsonl_text(samples),
                         "summary.json": json.dumps(summary, indent=2) + "\n"})
        plot_length_vs_correct([s["length"] for s in samples], [s["correct"] for s in samples],
                               out / "plots" / "length_vs_correct.png",
                               title=f"{source}: length by correctness")
        print_table(f"eval: {source} ({split})", summary)
        print(f"samples -> {out / 'samples.jsonl'}")
    return summary, samples
