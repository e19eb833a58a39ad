"""Plain-text tables for the terminal."""

from __future__ import annotations


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.1f}"
    return str(v)


def print_table(title: str, row: dict) -> None:
    """A two-column key/value table."""
    width = max(len(k) for k in row)
    print(f"\n{title}")
    print("-" * (width + 14))
    for k, v in row.items():
        print(f"{k:<{width}}  {fmt(v)}")
    print("-" * (width + 14))


def print_rows(title: str, rows: list[dict]) -> None:
    """A table with one line per row, columns from the first row's keys."""
    if not rows:
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols}
    print(f"\n{title}")
    print("  ".join(f"{c:>{widths[c]}}" for c in cols))
    for r in rows:
        print("  ".join(f"{fmt(r.get(c, '')):>{widths[c]}}" for c in cols))
