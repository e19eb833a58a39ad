"""Two gloo ranks vs one process: `step_metrics.length_bias_stats` gives global statistics (quartile edges from every
length, sums added before dividing), not the average of per-rank ratios. Ranks are forked; a hang fails."""

from __future__ import annotations

import os

import pytest
import torch

from reasonrl import dist
from reasonrl.train import rl, step_metrics

# six responses, uneven split (rank 0: rows 0-1, rank 1: rows 2-5) so per-rank means would differ from global ones
MASK = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]],
                    dtype=torch.bool)
ADV = torch.tensor([[0.2, 0.4, 9, 9], [-1, -1, 0, 0.4], [0.3, -0.3, 0.6, 9], [0.5, 9, 9, 9], [1, 1, 1, 1],
                    [-0.2, 0.0, 9, 9]])
CORRECT = torch.tensor([True, False, False, True, True, False])
SCORES = torch.tensor([1.0, -0.5, -1.0, 1.0, 1.0, -0.5])
SPLIT = [[0, 1], [2, 3, 4, 5]]
TIMEOUT_S = 180


def _batch() -> rl.Batch:
    n, t = MASK.shape
    return rl.Batch(input_ids=torch.zeros(n, t, dtype=torch.long), attention_mask=torch.ones(n, t), mask=MASK,
                    old_logp=torch.zeros(n, t), scores=SCORES, correct=CORRECT, lengths=MASK.sum(-1), advantages=ADV)


def _rank(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init("gloo")
    try:
        stats = step_metrics.length_bias_stats(_batch().rows(torch.tensor(SPLIT[rank])))
    finally:
        dist.destroy()
    torch.save(stats, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_ranks_give_the_one_process_statistics(tmp_path, free_port, run_forked):
    run_forked(_rank, (2, free_port(), str(tmp_path)), nprocs=2, timeout_s=TIMEOUT_S,
               what="the 2-process length-bias statistics")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    whole = step_metrics.length_bias_stats(_batch())
    # both ranks log the same global numbers, equal to one process holding every row
    assert ranks[0] == pytest.approx(whole, nan_ok=True) and ranks[1] == pytest.approx(whole, nan_ok=True)
    # hand check of two of them: correct lengths 2, 1, 4 -> 7/3; rewards < 0: 3 of 6
    assert whole["len_correct"] == pytest.approx(7 / 3) and whole["frac_negative"] == pytest.approx(0.5)
    # rank 1 alone (local edges and local sums) would log something else
    assert step_metrics.length_bias_stats(_batch().rows(torch.tensor(SPLIT[1]))) != pytest.approx(whole, nan_ok=True)
