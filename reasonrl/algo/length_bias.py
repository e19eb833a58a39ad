"""Length-bias diagnostics (Concise RL, arXiv 2504.05185 §3-4): is the update pushing toward longer answers?

The paper's argument: with GAE lambda < 1 and a per-response token-mean loss, the loss of response i is
proportional to -(1/T_i) sum_t A_it, so when rewards are mostly negative longer responses get a smaller
penalty per token and length grows; mostly positive rewards shrink it. The quantities to watch, per step:
mean length of correct vs wrong responses, fraction of negative rewards, and (1/T) sum_t A_t per length
quartile. Here they are computed as *sums and counts* so a trainer can add them up over processes before
dividing (`finish_length_bias`); the quartile edges must be global too (`quartile_edges` on all lengths).

Shapes: `B` sequences, `T` tokens; `mask` is bool `(B, T)`, True = a trained response token.
"""

import torch
from torch import Tensor

NUM_QUARTILES = 4


def seq_mean_advantage(advantages: Tensor, mask: Tensor) -> Tensor:
    """`(1/T_i) sum_t A_it` over the True positions of each row (0 for an all-False row); `(B,)`."""
    num = mask.sum(-1)  # (B,)
    return torch.where(mask, advantages, 0.0).sum(-1) / num.clamp(min=1)  # (B,)


def quartile_edges(lengths: Tensor) -> Tensor:
    """The 25/50/75% quantiles of `lengths` (linear interpolation); `(3,)` float. Pass *all* processes' lengths."""
    q = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float32)
    return torch.quantile(lengths.float().cpu(), q)  # (3,)


def length_bias_sums(lengths: Tensor, correct: Tensor, scores: Tensor, advantages: Tensor, mask: Tensor, *,
                     edges: Tensor) -> dict[str, Tensor]:
    """Sums and counts behind the diagnostics, to be summed over processes and then `finish_length_bias`.

    Quartile q of a response: the number of edges strictly below its length (`bucketize(..., right=False)`),
    so a length equal to an edge falls in the lower quartile. Keys: `len_correct` / `num_correct`,
    `len_wrong` / `num_wrong`, `num_negative` (reward < 0), `num` (responses), `adv_q{q}` / `num_q{q}`
    (sum of (1/T) sum_t A_t and count per quartile q = 1..4).
    """
    lengths = lengths.float().cpu()  # (B,)
    correct, scores = correct.cpu(), scores.float().cpu()
    per_seq = seq_mean_advantage(advantages, mask).float().cpu()  # (B,)
    quart = torch.bucketize(lengths, edges.float().cpu(), right=False)  # (B,) in 0..3
    out = {"len_correct": lengths[correct].sum(), "num_correct": correct.sum().float(),
           "len_wrong": lengths[~correct].sum(), "num_wrong": (~correct).sum().float(),
           "num_negative": (scores < 0).sum().float(), "num": torch.tensor(float(lengths.numel()))}
    for q in range(NUM_QUARTILES):
        out[f"adv_q{q + 1}"] = per_seq[quart == q].sum()
        out[f"num_q{q + 1}"] = (quart == q).sum().float()
    return out


def finish_length_bias(sums: dict[str, float]) -> dict[str, float]:
    """Ratios from (globally summed) `length_bias_sums`; NaN where a denominator is 0 (no such response).

    Keys: `len_correct`, `len_wrong` (mean lengths), `frac_negative`, `adv_len_q1..q4` (mean of (1/T) sum_t A_t
    among responses of that length quartile, q1 = shortest).
    """

    def ratio(a: str, b: str) -> float:
        return sums[a] / sums[b] if sums[b] > 0 else float("nan")

    out = {"len_correct": ratio("len_correct", "num_correct"), "len_wrong": ratio("len_wrong", "num_wrong"),
           "frac_negative": ratio("num_negative", "num")}
    for q in range(1, NUM_QUARTILES + 1):
        out[f"adv_len_q{q}"] = ratio(f"adv_q{q}", f"num_q{q}")
    return out
