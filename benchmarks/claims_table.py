"""Print the `claims` of paper-benchmark JSON files (`--out` of concise, pairwise, pairwise_sim, retro_search, swirl,
reflection_emergence, optim, vapo_*) as Markdown table rows, the verdicts exactly as the runs wrote them.

    python benchmarks/claims_table.py runs/swirl_3seeds.json runs/pairwise_kl.json     # rows for docs/papers.md

Columns: paper | claim | paper's number | our setting | ours [95% interval] (pairs) | verdict. A file without
`claims` is named on stderr and skipped. Not a benchmark: it reads results, it measures nothing.
"""

from __future__ import annotations

import argparse
import json
import sys


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}" if abs(x) >= 0.001 or x == 0 else f"{x:+.2e}"


def row(c: dict) -> str:
    ours = f"{fmt(c['ours'])} [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}] ({c.get('num_pairs', '?')} pairs)"
    cells = [c["paper"], c["claim"], str(c.get("paper_value") or "-"), c.get("setting", ""), ours,
             f"**{c['verdict']}**"]
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="benchmark JSON files written with --out")
    args = ap.parse_args()
    print("| paper | claim | paper's number | our setting | ours [95% interval] | verdict |")
    print("|---|---|---|---|---|---|")
    for path in args.files:
        claims = json.loads(open(path).read()).get("claims")
        if not claims:
            print(f"claims_table: {path} has no claims", file=sys.stderr)
            continue
        for c in claims:
            print(row(c))


if __name__ == "__main__":
    main()
