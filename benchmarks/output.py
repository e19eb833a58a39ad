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
