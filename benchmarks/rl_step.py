"""One GRPO step and one PPO step of reasonrl vs TRL's `GRPOTrainer` / `PPOTrainer`: same model, prompts, batch.

    .venv-bench/bin/python benchmarks/rl_step.py                    # 8 prompts x 8 samples x 32 tokens
    .venv-bench/bin/python benchmarks/rl_step.py --quick --out rl_step.json

TRL is an optional benchmark extra, never a runtime dependency: without it only our side runs and `ratio` is
null. Its PPO trainer lives in `trl.experimental.ppo` up to TRL 1.12 (gone from 1.13 on); where the installed TRL
has none, the PPO row has no TRL columns. TRL 1.12 also imports `requests` without declaring it.

A step is everything between two updates: rollout (prompts x samples completions) -> reward (the synthetic
world's verifier) -> advantages -> one PPO epoch over one minibatch holding the whole batch -> optimizer step.
Both libraries start from copies of one 2-layer d=128 Llama, sample at temperature 1 with no top-k / top-p and
make exactly `--new-tokens` tokens per completion (ours: `ignore_eos`; TRL GRPO: `min_new_tokens`; TRL PPO: no
stop token), in fp32 without gradient checkpointing or a KL term, in one process with the same threads.

Timing. Each side warms up for one step, then `--repeats` steps are timed and the median is reported. The two
sides alternate step by step, so background load on a shared machine hits both alike: a `TrainerCallback` runs
one of our steps (timed around the call) at TRL's `on_step_end`, and a TRL step is the time from the end of that
call (or from `on_train_begin`) to the next `on_step_end`, so TRL's setup is excluded and its per-step work
(data loading, logging, its own clean-up after `on_step_end`) is included.
tokens/s = completion tokens per step / median step seconds; `ratio` = ours / TRL. The "rollout" share is the
time from the step's start until its rewards are computed (ours: `collect` / `rollout_and_score` return; TRL:
its reward function is called, which for PPO comes after TRL's reference and value forward passes).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator

import torch
import transformers
from output import finish
from profiling import kernel_seconds
from transformers import PreTrainedModel

from reasonrl.algo.advantages import group_advantages
from reasonrl.config import Config, load_config
from reasonrl.model.setup import build_tokenizer
from reasonrl.model.tiny import build_model, build_shape, num_params
from reasonrl.model.tokenizer import ASSISTANT
from reasonrl.model.value import value_model_from_policy
from reasonrl.optim import build_optimizer
from reasonrl.reward import build_reward
from reasonrl.tasks.prompts import format_prompt
from reasonrl.tasks.synthetic import generate as synthetic
from reasonrl.tasks.synthetic import verify
from reasonrl.train import grpo, ppo, rl
from reasonrl.train.schedule import build_scheduler

ALGOS = ("grpo", "ppo")


# ----------------------------------------------------------------------------- shared setup


def build_policy(tokenizer, *, layers: int, width: int, seed: int = 0) -> PreTrainedModel:
    """A fresh Llama of `layers` x `width` (4 heads, MLP 3x) over the project tokenizer's vocabulary."""
    return build_shape(tokenizer, seed=seed, hidden_size=width, intermediate_size=3 * width,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4)


def step_config(algo: str, args) -> Config:
    """Our config for one step: `prompts` groups of `samples`, one epoch over one minibatch, no KL, fp32."""
    return load_config(None, [
        f"--rl.algo={algo}", f"--rl.prompts_per_step={args.prompts}", f"--rollout.num_samples={args.samples}",
        f"--rollout.max_new_tokens={args.new_tokens}", f"--rl.minibatch_size={args.prompts * args.samples}",
        "--rl.ppo_epochs=1", "--rl.kl_coef=0.0", "--rollout.temperature=1.0", "--log.progress=false",
    ])


def summarize(seconds: list[float], tokens_per_step: int) -> dict:
    median = statistics.median(seconds)
    return {"tok_s": round(tokens_per_step / median, 1), "median_s": round(median, 4),
            "seconds": [round(s, 4) for s in seconds]}


def seconds_since(start: float) -> float:
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- reasonrl


@contextlib.contextmanager
def forced_length() -> Iterator[None]:
    """Make `rl.rollout_and_score` sample past EOS, so every completion has exactly max_new_tokens tokens.

    The `[rollout]` config has no ignore_eos key (training never wants it), so the benchmark swaps the one
    function that turns the config into `SamplingParams`; the step functions assert that it took effect.
    """
    original = rl.sampling_params
    rl.sampling_params = lambda cfg, seed: dataclasses.replace(original(cfg, seed), ignore_eos=True)
    try:
        yield
    finally:
        rl.sampling_params = original


def ours_grpo(policy, tokenizer, records: list[dict], cfg: Config, total_steps: int) -> Callable[[int], tuple]:
    """`step(i) -> (completion tokens, rollout seconds)`: the body of `grpo.train` without logging, eval and
    checkpoints."""
    optimizer = build_optimizer(policy, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, total_steps)

    def step(i: int) -> tuple[int, float]:
        start = time.perf_counter()
        state = {"step": i, "prompt_cursor": i * cfg.rl.prompts_per_step}  # no dynamic sampling: one round
        batch, _ = grpo.collect(policy, tokenizer, records, cfg, state, build_reward(cfg))
        rollout_s = seconds_since(start)
        adv = group_advantages(batch.scores, cfg.rollout.num_samples, normalize_std=cfg.rl.group_std)  # (N,)
        batch.advantages = adv[:, None] * batch.mask
        rl.policy_update(policy, optimizer, batch, cfg, seed=rl.step_seed(cfg.train.seed, i, 99))
        scheduler.step()
        return check_lengths(batch, cfg), rollout_s

    return step


def ours_ppo(policy, tokenizer, records: list[dict], cfg: Config, total_steps: int) -> Callable[[int], tuple]:
    """`step(i) -> (completion tokens, rollout seconds)`: the body of `ppo.train` (after value pretraining)
    without logging, eval and checkpoints."""
    critic = value_model_from_policy(policy).train()
    optimizer = build_optimizer(policy, cfg.optim)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=cfg.rl.critic_lr, betas=tuple(cfg.optim.betas))
    scheduler = build_scheduler(optimizer, cfg.optim, total_steps)

    def step(i: int) -> tuple[int, float]:
        start = time.perf_counter()
        seed = rl.step_seed(cfg.train.seed, i, 0)
        prompts = rl.step_prompts(records, {"prompt_cursor": i * cfg.rl.prompts_per_step}, num=cfg.rl.prompts_per_step,
                                  seed=cfg.train.seed)
        batch, _ = rl.rollout_and_score(policy, tokenizer, prompts, cfg, seed, build_reward(cfg))
        rollout_s = seconds_since(start)
        batch = ppo.critic_advantages(critic, batch, cfg, pretraining=False)
        rl.critic_update(critic, critic_opt, batch, cfg, seed=seed)
        rl.policy_update(policy, optimizer, batch, cfg, seed=seed + 1)
        scheduler.step()
        return check_lengths(batch, cfg), rollout_s

    return step


def check_lengths(batch: rl.Batch, cfg: Config) -> int:
    want = cfg.rl.prompts_per_step * cfg.rollout.num_samples
    assert batch.size == want, f"step trained on {batch.size} completions, expected {want}"
    assert bool((batch.lengths == cfg.rollout.max_new_tokens).all()), "a completion stopped early"
    return int(batch.mask.sum())


def ours_runner(algo: str, model, tokenizer, records: list[dict], args) -> tuple[Callable[[], None], dict]:
    """Run our warm-up step now; return `run()`, which times one more step, and the log it appends to.
    Call inside `forced_length()`."""
    cfg = step_config(algo, args)
    build = {"grpo": ours_grpo, "ppo": ours_ppo}[algo]
    step = build(copy.deepcopy(model).train(), tokenizer, records, cfg, 1 + args.repeats)
    log: dict[str, list] = {"step": [], "rollout": [], "tokens": []}
    step(0)  # warm-up: allocator, lazy imports, tokenizer caches

    def run() -> None:
        start = time.perf_counter()
        num_tokens, rollout_s = step(len(log["step"]) + 1)
        log["step"].append(seconds_since(start))
        log["rollout"].append(rollout_s)
        log["tokens"].append(num_tokens)

    return run, log


def ours_summary(log: dict[str, list]) -> dict:
    assert len(set(log["tokens"])) == 1, f"completion tokens differ between steps: {log['tokens']}"
    return {**summarize(log["step"], log["tokens"][0]), "rollout_median_s": round(statistics.median(log["rollout"]), 4)}


def time_floor(model, tokenizer, records: list[dict], args) -> float:
    """Median seconds of one bare forward + backward of the policy over a step's batch (prompts x samples rows of
    longest prompt + new tokens): the least any update on that batch costs, whichever library runs it."""
    prompt_len = max(len(tokenizer.encode(format_prompt(tokenizer, r["prompt"]), add_special_tokens=False))
                     for r in records)
    shape = (args.prompts * args.samples, prompt_len + args.new_tokens)
    ids = torch.randint(len(tokenizer), shape, generator=torch.Generator().manual_seed(0))
    policy = copy.deepcopy(model).train()
    seconds = []
    for _ in range(1 + args.repeats):  # the first is the warm-up
        start = time.perf_counter()
        policy(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.logsumexp(dim=-1).mean().backward()
        policy.zero_grad(set_to_none=True)
        seconds.append(seconds_since(start))
    return statistics.median(seconds[1:])


# ----------------------------------------------------------------------------- TRL


def trl_status() -> tuple[str | None, str]:
    """(TRL version, "") or (None, why it cannot be imported)."""
    try:
        import trl
    except ImportError as e:
        return None, f"TRL cannot be imported ({e}): only reasonrl's side runs"
    return trl.__version__, ""


def trl_has_ppo() -> bool:
    try:
        from trl.experimental.ppo import PPOTrainer  # noqa: F401
    except ImportError:
        return False
    return True


def step_timer(stamps: dict[str, list[float]], between: Callable[[], None]):
    """A TrainerCallback that stamps each TRL step's start (train begin, or after `between`) and end, and runs
    `between()` (one of our steps) after every step but the last, outside TRL's timed spans."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            stamps["start"].append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            stamps["end"].append(time.perf_counter())
            if state.global_step < state.max_steps:
                between()
                stamps["start"].append(time.perf_counter())

    return StepTimer()


def trl_common(out_dir: str, args) -> dict:
    """TrainingArguments shared by both TRL trainers: CPU, fp32, no checkpointing, logging, saving or reporting."""
    return dict(output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
                report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
                learning_rate=1e-3, per_device_train_batch_size=args.prompts * args.samples,
                gradient_accumulation_steps=1, dataloader_num_workers=0)


@contextlib.contextmanager
def quiet_trl() -> Iterator[None]:
    """Silence TRL / transformers deprecation chatter while a trainer is built and run."""
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.logging.set_verbosity(level)


def run_trainer(trainer, policy: PreTrainedModel) -> None:
    """`trainer.train()` without the per-step metric printout; checks that activation checkpointing is off."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    assert not policy.is_activation_checkpointing, "TRL turned activation checkpointing on"
    trainer.train()


def trl_summary(stamps: dict[str, list[float]], tokens_per_step: int) -> dict:
    """Step seconds from the step stamps, without the warm-up step; a step's rollout lasts from its start to the
    first reward call in it (the reward functions stamp `stamps["reward"]` when called)."""
    steps, rollouts = [], []
    for start, end in zip(stamps["start"][1:], stamps["end"][1:], strict=True):
        steps.append(end - start)
        rollouts.append(min(t for t in stamps["reward"] if start < t < end) - start)
    return {**summarize(steps, tokens_per_step), "rollout_median_s": round(statistics.median(rollouts), 4)}


def time_trl_grpo(model, tokenizer, records: list[dict], args, between: Callable[[], None]) -> dict:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    lengths: list[int] = []
    stamps: dict[str, list[float]] = {"start": [], "end": [], "reward": []}

    def reward(prompts, completions, completion_ids, answer, **kwargs) -> list[float]:
        stamps["reward"].append(time.perf_counter())
        lengths.extend(len(c) for c in completion_ids)
        return [1.0 if verify(c, a) else -1.0 for c, a in zip(completions, answer, strict=True)]

    data = Dataset.from_list([{"prompt": format_prompt(tokenizer, r["prompt"]), "answer": r["answer"]}
                              for r in records])
    policy = copy.deepcopy(model)
    with tempfile.TemporaryDirectory() as out_dir, quiet_trl():
        config = GRPOConfig(**trl_common(out_dir, args), max_steps=1 + args.repeats, num_generations=args.samples,
                            max_completion_length=args.new_tokens,
                            generation_kwargs={"min_new_tokens": args.new_tokens}, temperature=1.0, top_p=1.0,
                            top_k=0, beta=0.0, num_iterations=1, steps_per_generation=1, loss_type="grpo",
                            scale_rewards="group", shuffle_dataset=False)
        trainer = GRPOTrainer(model=policy, reward_funcs=reward, args=config, train_dataset=data,
                              processing_class=tokenizer, callbacks=[step_timer(stamps, between)])
        run_trainer(trainer, policy)
    num = args.prompts * args.samples
    assert len(lengths) == num * (1 + args.repeats), f"TRL GRPO scored {len(lengths)} completions"
    assert set(lengths) == {args.new_tokens}, f"TRL GRPO completion lengths {sorted(set(lengths))}"
    return trl_summary(stamps, num * args.new_tokens)


def verifier_reward_model(tokenizer, records: list[dict], lengths: list[int], stamps: list[float]) -> torch.nn.Module:
    """The synthetic verifier in the shape TRL's PPO `get_reward` calls: `getattr(m, m.base_model_prefix)(...)`
    returns hidden states whose last entry `m.score` maps to a per-position reward (here: the same everywhere)."""
    from types import SimpleNamespace

    assistant = tokenizer.convert_tokens_to_ids(ASSISTANT)
    answers = {r["prompt"]: r["answer"] for r in records}

    class Verifier(torch.nn.Module):
        def forward(self, input_ids, attention_mask, **kwargs):
            stamps.append(time.perf_counter())
            scores = []
            for ids, keep in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
                ids = [t for t, k in zip(ids, keep, strict=True) if k]
                cut = ids.index(assistant)
                prompt = tokenizer.decode(ids[:cut], skip_special_tokens=True).strip()
                lengths.append(len(ids) - cut - 1)
                ok = verify(tokenizer.decode(ids[cut + 1 :], skip_special_tokens=True), answers[prompt])
                scores.append(1.0 if ok else -1.0)
            hidden = torch.tensor(scores)[:, None, None].expand(-1, input_ids.shape[1], 1)  # (B, L, 1)
            return SimpleNamespace(hidden_states=(hidden,))

    class RewardModel(torch.nn.Module):
        base_model_prefix = "verifier"

        def __init__(self):
            super().__init__()
            self.verifier = Verifier()
            self.score = torch.nn.Identity()

    return RewardModel()


def time_trl_ppo(model, tokenizer, records: list[dict], args, between: Callable[[], None]) -> dict:
    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    # PPOTrainer has no group sampling: the dataset holds every prompt `samples` times, one batch per step
    rows = [{"input_ids": tokenizer.encode(format_prompt(tokenizer, r["prompt"]), add_special_tokens=False)}
            for r in records for _ in range(args.samples)]
    data = Dataset.from_list(rows)
    num = len(rows)
    lengths: list[int] = []
    stamps: dict[str, list[float]] = {"start": [], "end": [], "reward": []}
    policy = copy.deepcopy(model)
    with tempfile.TemporaryDirectory() as out_dir, quiet_trl():
        config = PPOConfig(**trl_common(out_dir, args), total_episodes=num * (1 + args.repeats), num_mini_batches=1,
                           num_ppo_epochs=1, local_rollout_forward_batch_size=num, response_length=args.new_tokens,
                           stop_token=None, stop_token_id=None, temperature=1.0, kl_coef=0.0,
                           num_sample_generations=0)
        reward_model = verifier_reward_model(tokenizer, records, lengths, stamps["reward"])
        trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=None,
                             reward_model=reward_model, value_model=value_model_from_policy(policy),
                             train_dataset=data, eval_dataset=data, callbacks=[step_timer(stamps, between)])
        run_trainer(trainer, policy)
    assert len(lengths) == num * (1 + args.repeats), f"TRL PPO scored {len(lengths)} completions"
    # a sampled pad token ends TRL's PPO response for the reward, not the compute: count the generated tokens
    assert max(lengths) == args.new_tokens, f"TRL PPO completion lengths up to {max(lengths)}"
    return trl_summary(stamps, num * args.new_tokens)


# ----------------------------------------------------------------------------- scaling


SCALING_PRESETS = ("tiny", "small", "medium")
SCALING_ROWS = (8, 64, 256)  # completions per step: 1, 8, 32 prompts x 8 samples
SCALING_TOKENS = {"tiny": 32, "small": 16, "medium": 8}  # new tokens per completion (fewer for the big model)


def scaling_cell(policy, tokenizer, optimizer, records: list[dict], rows: int, new_tokens: int) -> dict:
    """One of our GRPO steps on `rows` completions, split into rollout / score / update seconds, with its peak
    resident memory above the step's start."""
    from rss import peak_rss_reset, peak_rss_since

    args = argparse.Namespace(prompts=rows // 8, samples=8, new_tokens=new_tokens)
    cfg = step_config("grpo", args)
    base = peak_rss_reset()
    start, cpu = time.perf_counter(), time.process_time()
    batch, info = rl.rollout_and_score(policy, tokenizer, records[: args.prompts], cfg, 0, build_reward(cfg))
    sampled, sampled_cpu = seconds_since(start), time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    adv = group_advantages(batch.scores, 8, normalize_std=cfg.rl.group_std)  # (N,)
    batch.advantages = adv[:, None] * batch.mask
    rl.policy_update(policy, optimizer, batch, cfg, seed=0)
    update, update_cpu = seconds_since(start), time.process_time() - cpu
    tokens = check_lengths(batch, cfg)
    rollout, score = sampled - info["time_score"], info["time_score"]
    return {"rows": rows, "new_tokens": new_tokens, "rollout_s": round(rollout, 3), "score_s": round(score, 4),
            "update_s": round(update, 3), "tok_s": round(tokens / (sampled + update), 1),
            "rollout_tok_s": round(tokens / rollout, 1), "rollout_score_cpu_s": round(sampled_cpu, 3),
            "update_cpu_s": round(update_cpu, 3), "peak_mb": round(peak_rss_since(base) / 2**20, 1)}


def scaling(presets: list[str], rows_grid: tuple[int, ...] = SCALING_ROWS) -> list[dict]:
    """Our GRPO step over model size x completions per step; a warm-up step at 8 completions per preset."""
    tokenizer = build_tokenizer()
    records = synthetic(max(SCALING_ROWS) // 8, seed=0, difficulty=2)
    out = []
    for preset in presets:
        policy = build_model(preset, tokenizer).train()
        optimizer = build_optimizer(policy, step_config("grpo", argparse.Namespace(prompts=1, samples=8,
                                                                                   new_tokens=8)).optim)
        new_tokens = SCALING_TOKENS.get(preset, 16)
        with forced_length():
            scaling_cell(policy, tokenizer, optimizer, records, 8, new_tokens)  # warm-up
            for rows in rows_grid:
                out.append({"preset": preset, "params": num_params(policy),
                            **scaling_cell(policy, tokenizer, optimizer, records, rows, new_tokens)})
                print(out[-1], flush=True)
    print("\n| preset | params | completions | new tokens | rollout s | score s | update s | tok/s (step) "
          "| tok/s (rollout) | CPU s rollout+score | CPU s update | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in out:
        print(f"| {r['preset']} | {r['params'] / 1e6:.1f}M | {r['rows']} | {r['new_tokens']} | {r['rollout_s']:.3f} "
              f"| {r['score_s']:.4f} | {r['update_s']:.3f} | {r['tok_s']:.0f} | {r['rollout_tok_s']:.0f} "
              f"| {r['rollout_score_cpu_s']:.3f} | {r['update_cpu_s']:.3f} | {r['peak_mb']:.0f} |")
    return out


# ----------------------------------------------------------------------------- main


def bench(algo: str, model, tokenizer, records: list[dict], args, trl_version: str | None) -> dict:
    """Time `algo` on both sides; with TRL, our steps run between TRL's steps (see `step_timer`)."""
    row = {"algo": algo, "ours": None, "trl": None, "ratio": None, "trl_note": None}
    if trl_version is None:
        row["trl_note"] = "TRL not installed"
    elif algo == "ppo" and not trl_has_ppo():
        row["trl_note"] = f"TRL {trl_version} has no PPOTrainer (trl.experimental.ppo was removed after 1.12)"
    with forced_length():
        run_ours, log = ours_runner(algo, model, tokenizer, records, args)
        if row["trl_note"] is None:
            timer = {"grpo": time_trl_grpo, "ppo": time_trl_ppo}[algo]
            row["trl"] = timer(model, tokenizer, records, args, between=run_ours)
        else:
            for _ in range(args.repeats):
                run_ours()
        if args.kernels:
            row["kernel_s"] = kernel_seconds(run_ours)
            log = {k: v[:-1] for k, v in log.items()}  # the profiled step is not timed
    row["ours"] = ours_summary(log)
    if row["trl"] is not None:
        row["ratio"] = round(row["ours"]["tok_s"] / row["trl"]["tok_s"], 2)
        if args.kernels:
            row["ratio_ceiling"] = round(row["trl"]["median_s"] / row["kernel_s"], 2)
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 timed steps per side (under a minute)")
    ap.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--samples", type=int, default=8, help="completions per prompt")
    ap.add_argument("--new-tokens", type=int, default=32, help="tokens per completion (forced)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per side after one warm-up (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=None, help="write the headline figures as JSON here")
    ap.add_argument("--kernels", action="store_true",
                    help="also profile one of our steps: matmul + attention kernel seconds and the ratio ceiling")
    ap.add_argument("--scaling", nargs="*", default=None, metavar="PRESET",
                    help="instead: our GRPO step split into rollout / score / update, with peak memory, over presets "
                    f"(default {' '.join(SCALING_PRESETS)}) x {'/'.join(map(str, SCALING_ROWS))} completions")
    ap.add_argument("--scaling-rows", type=int, nargs="+", default=list(SCALING_ROWS),
                    help="completions per step in the scaling grid (multiples of 8)")
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.scaling is not None:
        cells = scaling(args.scaling or list(SCALING_PRESETS), tuple(args.scaling_rows))
        summary = {"benchmark": "rl_step_scaling", "threads": torch.get_num_threads(), "cells": cells, "ratio": None}
        return finish(summary, args.out)

    tokenizer = build_tokenizer()
    model = build_policy(tokenizer, layers=args.layers, width=args.width)
    records = synthetic(args.prompts, seed=0, difficulty=2)
    trl_version, trl_why = trl_status()
    if trl_version is None:
        print(trl_why)
    results = [bench(algo, model, tokenizer, records, args, trl_version) for algo in args.algos]
    floor_s = time_floor(model, tokenizer, records, args)

    print(f"\n{args.prompts} prompts x {args.samples} samples x {args.new_tokens} new tokens, "
          f"{args.layers}-layer d={args.width} Llama ({num_params(model) / 1e6:.2f}M params), fp32, "
          f"{torch.get_num_threads()} CPU threads, TRL {trl_version or 'absent'}, median of {args.repeats} steps")
    print("| step | reasonrl s/step (rollout) | reasonrl tok/s | TRL s/step (rollout) | TRL tok/s | ratio |")
    print("|---|---|---|---|---|---|")
    for r in results:
        o, t = r["ours"], r["trl"]
        trl_cols = (f"{t['median_s']:.3f} ({t['rollout_median_s']:.3f}) | {t['tok_s']:.0f} | {r['ratio']:.2f}x" if t
                    else f"- | - | {r['trl_note']}")
        print(f"| {r['algo']} | {o['median_s']:.3f} ({o['rollout_median_s']:.3f}) | {o['tok_s']:.0f} | {trl_cols} |")
    print(f"bare policy forward + backward on one step's batch: {floor_s:.3f} s")
    for r in results:
        if "kernel_s" in r:
            ceiling = f", ratio ceiling (TRL s / kernel s) {r['ratio_ceiling']:.2f}x" if "ratio_ceiling" in r else ""
            print(f"{r['algo']}: matmul + attention kernels {r['kernel_s']:.3f} s of our "
                  f"{r['ours']['median_s']:.3f} s step{ceiling}")
    ratios = [r["ratio"] for r in results if r["ratio"] is not None]
    summary = {
        "benchmark": "rl_step",
        "device": "cpu",
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl_version,
        "prompts": args.prompts,
        "samples": args.samples,
        "new_tokens": args.new_tokens,
        "params": num_params(model),
        "repeats": args.repeats,
        "results": results,
        "fwd_bwd_floor_s": round(floor_s, 4),
        "ratio": min(ratios) if ratios else None,
    }
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
