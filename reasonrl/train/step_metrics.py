"""A RL step's metrics, summed over processes (every process makes the same collectives): reward, accuracy and
length of the step's responses, advantage spread, Concise RL's length-bias diagnostics, throughput and the time
split (`step_record`), the progress bar's postfix, and the held-out-length early stop (`train.early_stop_patience`).
"""

from __future__ import annotations

import torch

from reasonrl import dist
from reasonrl.algo.length_bias import finish_length_bias, length_bias_sums, quartile_edges
from reasonrl.config import Config
from reasonrl.reward.stats import reward_stat_means
from reasonrl.train.rl import Batch, global_count


def trained_rows(batch: Batch) -> Batch:
    """The rows that are responses of this step: all but the masked stand-in group a process without a kept group
    trains on (`grpo.collect`; a real response has at least one sampled token, so its mask is not all False)."""
    real = batch.mask.any(dim=1)
    return batch if bool(real.all()) else batch.rows(real.nonzero()[:, 0])


def rollout_stats(batch: Batch) -> dict:
    """Reward, accuracy and length diagnostics of this step's responses (`trained_rows`), summed over processes."""
    batch = trained_rows(batch)
    n = global_count(torch.ones(batch.size))
    lengths = batch.lengths.float()
    max_len = dist.all_gather_object(int(lengths.max()) if batch.size else 0)
    acc = {} if batch.correct is None else {"acc": global_count(batch.correct) / max(n, 1.0)}  # no judge, no acc
    return {"reward": global_count(batch.scores) / max(n, 1.0), **acc,
            "resp_len": global_count(lengths) / max(n, 1.0), "resp_len_max": max(max_len), "num_responses": int(n)}


def advantage_stats(batch: Batch) -> dict:
    m = batch.mask
    num = global_count(m)
    mean = global_count(batch.advantages[m]) / num
    var = global_count((batch.advantages[m] - mean) ** 2) / num
    return {"adv_mean": mean, "adv_std": var**0.5}


def length_bias_stats(batch: Batch) -> dict:
    """Concise RL's length-bias diagnostics (`algo.length_bias`) over all processes' rows: quartile edges from
    every length, sums added up before dividing; without `len_correct` / `len_wrong` when no reward judged
    correctness."""
    batch = trained_rows(batch)
    all_lengths = [n for part in dist.all_gather_object(batch.lengths.tolist()) for n in part]
    edges = quartile_edges(torch.tensor(all_lengths))
    judged = batch.correct is not None  # else no lengths of correct / wrong answers (a zeros stand-in keeps the sums)
    correct = batch.correct if judged else torch.zeros_like(batch.lengths, dtype=torch.bool)
    sums = length_bias_sums(batch.lengths, correct, batch.scores, batch.advantages, batch.mask, edges=edges)
    names = list(sums)
    total = dist.all_reduce_sum(torch.stack([sums[k].float() for k in names]))
    out = finish_length_bias(dict(zip(names, total.tolist(), strict=True)))
    return out if judged else {k: v for k, v in out.items() if k not in ("len_correct", "len_wrong")}


def step_record(state: dict, batch: Batch, stats: dict, *, lr: float, t0: float, t1: float, t2: float) -> dict:
    """Advance `state` (step, tokens seen) past this step and return its metrics: rollout, advantage and
    update statistics, learning rate, generated tokens per second and the time split: sampling
    (`time_rollout`), verifying and rewarding (`time_score`, from `stats`), training (`time_train`)."""
    state["step"] += 1
    state["tokens_seen"] += int(global_count(trained_rows(batch).attention_mask))
    stats = dict(stats)
    reward_means = reward_stat_means(stats.pop("reward_stats", {}))
    stats["num_truncated"] = int(global_count(torch.tensor([float(stats.get("num_truncated", 0))])))
    return {"step": state["step"], **rollout_stats(batch), **advantage_stats(batch), **length_bias_stats(batch),
            **reward_means, **stats, "lr": lr,
            "tokens_per_s": global_count(batch.mask) / (t2 - t0),
            "time_rollout": t1 - t0 - stats.get("time_score", 0.0), "time_train": t2 - t1}


def postfix(record: dict, **keys: str) -> dict[str, str]:
    """A progress bar's postfix: `label=record[key]` for each of `keys` the record holds (a run whose reward judges
    no correctness has no `acc`)."""
    return {label: f"{record[key]:.3g}" for label, key in keys.items() if record.get(key) is not None}


def length_plateaued(lengths: list[float], patience: int) -> bool:
    """True when none of the last `patience` values fell below the best before them (needs patience + 1 values).

    [50, 40, 42, 41], patience 2: best before the last two is 40, min(42, 41) >= 40 -> True; patience 3: False."""
    if patience <= 0 or len(lengths) <= patience:
        return False
    return min(lengths[-patience:]) >= min(lengths[:-patience])


def early_stop(state: dict, record: dict, cfg: Config) -> bool:
    """`train.early_stop_patience`: add this step's held-out length (if it was evaluated) to `state` (saved in
    checkpoints, so a resumed run keeps its history) and say whether length has stopped falling."""
    if not cfg.train.early_stop_patience or record.get("heldout_len") is None:
        return False
    state.setdefault("heldout_lens", []).append(float(record["heldout_len"]))
    return length_plateaued(state["heldout_lens"], cfg.train.early_stop_patience)
