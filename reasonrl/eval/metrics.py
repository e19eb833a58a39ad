"""Sampling-based accuracy metrics: mean@n, unbiased pass@k, and a per-run summary."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021, "Evaluating LLMs Trained on Code", eq. 1).

    pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i), the product form being stable for large n.
    """
    n, c, k = operator.index(n), operator.index(c), operator.index(k)  # ints (numpy ints too), never floats
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_at_n(correct_matrix: Sequence[Sequence[bool]]) -> float:
    """mean@n: per-problem accuracy over its samples, averaged over problems (rows may differ in length)."""
    if len(correct_matrix) == 0:
        raise ValueError("mean@n of no problems")
    total = 0.0
    for i, row in enumerate(correct_matrix):
        if len(row) == 0:
            raise ValueError(f"problem {i} has no samples")
        total += sum(bool(x) for x in row) / len(row)
    return total / len(correct_matrix)


def _group(records: Iterable[Mapping]) -> tuple[dict[object, list[bool]], list[Mapping]]:
    """Per-problem correctness lists (first-seen order) and the records as a list, with their keys checked."""
    by_problem: dict[object, list[bool]] = {}
    rows = list(records)
    for i, r in enumerate(rows):
        missing = {"problem_id", "correct", "length", "has_answer"} - set(r)
        if missing:
            raise ValueError(f"record {i} lacks {sorted(missing)}")
        by_problem.setdefault(r["problem_id"], []).append(bool(r["correct"]))
    if not rows:
        raise ValueError("summary of no records")
    return by_problem, rows


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(records: Iterable[Mapping], *, ks: Sequence[int] = (1,)) -> dict[str, float | int | None]:
    """Summary of per-sample records `{problem_id, correct, length, has_answer}`.

    Keys: `mean@n`, `pass@k` per k (averaged over problems; k above a problem's sample count is a ValueError),
    `mean_length` / `mean_length_correct` / `mean_length_wrong` (None when there is no such sample), `no_answer_rate`,
    `num_problems`, `num_samples`, `num_correct`, `num_no_answer`.
    """
    by_problem, rows = _group(records)
    summary: dict[str, float | int | None] = {"mean@n": mean_at_n(list(by_problem.values()))}
    for k in ks:
        short = next((p for p, c in by_problem.items() if len(c) < k), None)
        if short is not None:
            raise ValueError(
                f"pass@{k} needs >= {k} samples per problem; problem {short!r} has {len(by_problem[short])}"
            )
        per_problem = [pass_at_k(len(c), sum(c), k) for c in by_problem.values()]
        summary[f"pass@{k}"] = sum(per_problem) / len(per_problem)
    lengths = [(float(r["length"]), bool(r["correct"])) for r in rows]
    num_no_answer = sum(not r["has_answer"] for r in rows)
    summary |= {
        "mean_length": _mean([n for n, _ in lengths]),
        "mean_length_correct": _mean([n for n, ok in lengths if ok]),
        "mean_length_wrong": _mean([n for n, ok in lengths if not ok]),
        "no_answer_rate": num_no_answer / len(rows),
        "num_problems": len(by_problem),
        "num_samples": len(rows),
        "num_correct": sum(ok for _, ok in lengths),
        "num_no_answer": num_no_answer,
    }
    return summary
