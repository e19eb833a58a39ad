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


def _match(rows: list[list[str]], claims: list[dict]) -> dict[int, int]:
    """Row -> claim, one claim per row at most (Kuhn's augmenting paths): a row matches a claim of its paper with
    the interval the row prints and the same verdict. Two claims may share an interval (Retro-Search's "raises" and
    "keeps accuracy" per seed), so a verdict flipped by hand must not borrow the other claim."""
    def fits(r: list[str], c: dict) -> bool:
        m = INTERVAL.search(r[4])
        return bool(m) and c["paper"].startswith(r[0]) and c["verdict"] == r[5].strip("*") and (
            _near(float(m.group(1)), c["ci_low"]) and _near(float(m.group(2)), c["ci_high"]))

    options = [[j for j, c in enumerate(claims) if fits(r, c)] for r in rows]
    owner: dict[int, int] = {}  # claim -> row

    def place(i: int, seen: set[int]) -> bool:
        for j in options[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(rows)):
        place(i, set())
    return {i: j for j, i in owner.items()}


def test_every_row_is_a_claim_a_run_wrote_with_its_verdict():
    claims, (rows, _) = _claims(), _tables()
    assert len(rows) >= 7 and all(c["verdict"] in VERDICTS for c in claims)
    assert len({r[0] for r in rows}) == 7, {r[0] for r in rows}  # every paper has at least one row
    matched = _match(rows, claims)
    for i, r in enumerate(rows):
        assert i in matched, f"{r[0]}: {r[1]!r}: {r[4][:60]} {r[5]} is no claim of docs/claims (or shares one)"


def test_the_count_table_adds_up_to_the_rows():
    rows, counts = _tables()
    for paper, total, *per in counts:
        mine = Counter(r[5].strip("*") for r in rows if r[0] == paper)
        assert int(total) == sum(mine.values()), paper
        assert [int(x) for x in per] == [mine[v] for v in VERDICTS], paper
