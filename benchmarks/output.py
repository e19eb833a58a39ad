"""The benchmarks' common last step: the headline figures as JSON (`--out FILE.json`)."""

from __future__ import annotations

import json


def finish(summary: dict, out: str | None) -> dict:
    """Write `summary` to `out` as indented JSON when a path is given; return it (what `main()` returns)."""
    if out:
        with open(out, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    return summary


def print_claims(claims: list[dict], *, digits: int = 3, pairs: bool = False) -> None:
    """One line per claim: verdict, claim, ours [ci_low, ci_high] with `digits` decimals (and the pair count)."""
    for c in claims:
        tail = f" ({c['num_pairs']} pairs)" if pairs else ""
        print(f"  {c['verdict']:<15} {c['claim']}: {c['ours']:+.{digits}f} [{c['ci_low']:+.{digits}f}, "
              f"{c['ci_high']:+.{digits}f}]{tail}")
