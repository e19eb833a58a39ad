"""docs/papers.md against the runs' claims (docs/claims/*.json, the `claims` lists the paper benchmarks wrote with
`--out`): every row's interval and verdict are those of a claim a run wrote, so a verdict edited by hand, or a
number copied from the wrong claim, fails here; and the per-paper count table adds up to the rows."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from reasonrl.eval.verdicts import VERDICTS

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = re.compile(r"\[([+-]?\d[\d.e+-]*), ([+-]?\d[\d.e+-]*)\]")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]  # "\|" inside a cell is text


def _tables() -> tuple[list[list[str]], list[list[str]]]:
    """(claim rows, count rows) of docs/papers.md: the claim table has 8 columns, the count table 5."""
    rows = [_cells(line) for line in (ROOT / "docs" / "papers.md").read_text().splitlines() if line.startswith("| ")]
    rows = [r for r in rows if r[0] != "paper"]
    return [r for r in rows if len(r) == 8], [r for r in rows if len(r) == 5]


def _claims() -> list[dict]:
    return [c for f in sorted((ROOT / "docs" / "claims").glob("*.json")) for c in json.loads(f.read_text())["claims"]]


def _near(shown: float, value: float) -> bool:
    """`shown` is `value` as the table prints it (3 decimals, or 2 significant digits for small numbers)."""
    return abs(shown - value) <= max(5e-4, 0.01 * abs(value)) + 1e-12


def test_every_row_is_a_claim_a_run_wrote_with_its_verdict():
    claims, (rows, _) = _claims(), _tables()
    assert len(rows) >= 7 and all(c["verdict"] in VERDICTS for c in claims)
    papers = {r[0] for r in rows}
    assert len(papers) == 7, papers  # every paper has at least one row
    for r in rows:
        verdict = r[5].strip("*")
        m = INTERVAL.search(r[4])
        assert m, f"no interval in the row {r[:2]}"
        lo, hi = float(m.group(1)), float(m.group(2))
        assert any(_near(lo, c["ci_low"]) and _near(hi, c["ci_high"]) and c["verdict"] == verdict for c in claims), (
            f"{r[0]}: {r[1]!r}: {r[4][:60]} {verdict} is no claim in docs/claims")


def test_the_count_table_adds_up_to_the_rows():
    rows, counts = _tables()
    for paper, total, *per in counts:
        mine = Counter(r[5].strip("*") for r in rows if r[0] == paper)
        assert int(total) == sum(mine.values()), paper
        assert [int(x) for x in per] == [mine[v] for v in VERDICTS], paper
