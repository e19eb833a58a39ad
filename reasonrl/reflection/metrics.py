"""Reflection metrics and their correlation with pre-training compute (Rethinking Reflection in Pre-Training,
arXiv 2504.04022, Table 3 and Tables 6-7).

Per (dataset, checkpoint), over items i with correctness c_i and classifier verdict r_i (explicitly reflective):

    accuracy                      = mean(c)
    explicit_reflection_rate      = mean(r)              (correct or not)
    explicit_reflection_accuracy  = mean(c and r)
    implicit_reflection_accuracy  = mean(c and not r)

so accuracy = explicit accuracy + implicit accuracy. Every number is computed per seed and averaged over seeds
(the paper uses 3 runs). Tables 6-7 report the Pearson r of each metric with log pre-training compute 6·N·D.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

from reasonrl.errors import UserError

METRICS: tuple[str, ...] = ("accuracy", "explicit_reflection_rate", "explicit_reflection_accuracy",
                            "implicit_reflection_accuracy")


def reflection_metrics(records: Sequence[Mapping]) -> dict:
    """Paper Table 3 metrics of `records` (`correct`, `reflective`: bool, `seed`), per seed then averaged.

    Returns the four METRICS (floats), `num_seeds`, `num_records` and `per_seed` ({seed: {metric: float}}).
    Sums are exact (fractions), and `accuracy` is returned as the float sum of the explicit and implicit
    accuracies, so `accuracy == explicit_reflection_accuracy + implicit_reflection_accuracy` holds exactly
    (it equals the plain mean of `correct` up to one rounding)."""
    if not records:
        raise UserError("reflection metrics: no records")
    by_seed: dict[object, list[tuple[bool, bool]]] = {}
    for i, r in enumerate(records):
        for key in ("correct", "reflective", "seed"):
            if key not in r:
                raise UserError(f"reflection records[{i}]: missing key {key!r}")
        if not isinstance(r["correct"], bool) or not isinstance(r["reflective"], bool):
            raise UserError(f"reflection records[{i}]: 'correct' and 'reflective' must be true or false")
        by_seed.setdefault(r["seed"], []).append((r["correct"], r["reflective"]))
    per_seed = {seed: _seed_fractions(pairs) for seed, pairs in by_seed.items()}
    mean = {k: sum(m[k] for m in per_seed.values()) / len(per_seed) for k in METRICS}
    return {**_as_floats(mean), "num_seeds": len(per_seed), "num_records": len(records),
            "per_seed": {seed: _as_floats(m) for seed, m in per_seed.items()}}


def _seed_fractions(pairs: list[tuple[bool, bool]]) -> dict[str, Fraction]:
    n = len(pairs)
    expl = Fraction(sum(c and r for c, r in pairs), n)
    impl = Fraction(sum(c and not r for c, r in pairs), n)
    return {"accuracy": expl + impl, "explicit_reflection_rate": Fraction(sum(r for _, r in pairs), n),
            "explicit_reflection_accuracy": expl, "implicit_reflection_accuracy": impl}


def _as_floats(m: Mapping[str, Fraction]) -> dict[str, float]:
    expl, impl = float(m["explicit_reflection_accuracy"]), float(m["implicit_reflection_accuracy"])
    return {"accuracy": expl + impl, "explicit_reflection_rate": float(m["explicit_reflection_rate"]),
            "explicit_reflection_accuracy": expl, "implicit_reflection_accuracy": impl}


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson r = sum(dx dy) / sqrt(sum(dx^2) sum(dy^2)); NaN when either side is constant (undefined)."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"pearson needs two equal-length sequences of at least 2 values, got {len(xs)}, {len(ys)}")
    mx, my = math.fsum(xs) / len(xs), math.fsum(ys) / len(ys)
    dx, dy = [x - mx for x in xs], [y - my for y in ys]
    sxx, syy = math.fsum(d * d for d in dx), math.fsum(d * d for d in dy)
    if sxx == 0 or syy == 0:
        return math.nan
    return math.fsum(a * b for a, b in zip(dx, dy, strict=True)) / math.sqrt(sxx * syy)


def train_compute(params: float, tokens: float) -> float:
    """Pre-training compute 6·N·D FLOPs (paper §5.4; Tables 6-7 use its log)."""
    return 6.0 * params * tokens


def inference_compute(params: float, words: float) -> float:
    """Test-time compute 2·N·w FLOPs for w generated words (paper §5.4)."""
    return 2.0 * params * words


def correlations_with_compute(table: Sequence[Mapping], metrics: Sequence[str] = METRICS) -> dict:
    """Paper Tables 6-7 for one dataset: Pearson r of each metric with log10(6·params·tokens) across the
    checkpoint rows of `table` (`params`, `tokens`, and the metrics), plus `num_checkpoints_correcting`, the
    number of checkpoints with accuracy above zero (the tables' first column). The log base and the units of
    compute do not change r (the released CSVs use ln of compute in units of 1e21 FLOPs)."""
    for i, row in enumerate(table):
        for key in ("params", "tokens", *metrics):
            if key not in row:
                raise UserError(f"compute table row {i}: missing key {key!r}")
    x = [math.log10(train_compute(row["params"], row["tokens"])) for row in table]
    out: dict = {m: pearson(x, [row[m] for row in table]) for m in metrics}
    if "accuracy" in metrics:
        out["num_checkpoints_correcting"] = sum(row["accuracy"] > 0 for row in table)
    return out
