"""Plots a person would rather look at than read: training curves and length-vs-correctness."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(records: list[dict], keys: list[str], out_path: str | Path, *, title: str = "") -> Path | None:
    """One panel per metric key, value against `step`; keys absent from every record are skipped."""
    keys = [k for k in keys if any(r.get(k) is not None for r in records)]
    if not keys:
        return None
    ncols = min(4, len(keys))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30 else None)
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, out_path)


def _save(fig, out_path: str | Path) -> Path:
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_length_vs_correct(lengths: list[int], correct: list[bool], out_path: str | Path, *, title: str = "") -> Path:
    """Histogram of response length for correct vs wrong answers."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    right = [n for n, c in zip(lengths, correct, strict=True) if c]
    wrong = [n for n, c in zip(lengths, correct, strict=True) if not c]
    bins = max(5, min(40, len(set(lengths))))
    if right:
        ax.hist(right, bins=bins, alpha=0.6, label=f"correct (n={len(right)})")
    if wrong:
        ax.hist(wrong, bins=bins, alpha=0.6, label=f"wrong (n={len(wrong)})")
    ax.set_xlabel("response length (tokens)")
    ax.set_ylabel("count")
    ax.legend()
    ax.set_title(title or "response length by correctness")
    return _save(fig, out_path)
