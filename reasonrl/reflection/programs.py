"""Safe arithmetic and programs for the adversarial chains of thought (arXiv 2504.04022, App. F.1).

A CoT's calculations become a program of steps that refer to earlier steps; parsing never evals, and
`propagate` re-runs a program after a perturbation as the paper re-executes its Python programs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

# ---------------------------------------------------------------- safe arithmetic (never eval)

MAX_EXPR_CHARS = 200
MAX_DEPTH = 16
MAX_NUMBER_CHARS = 24
MAX_MAGNITUDE = Fraction(10) ** 15


@dataclass(frozen=True)
class Num:
    """A literal; `var` numbers the question variable it stands for (None: a constant of the CoT)."""

    value: Fraction
    var: int | None = None


@dataclass(frozen=True)
class Ref:
    """The result of an earlier step."""

    step: int


@dataclass(frozen=True)
class Neg:
    operand: Expr


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr


Expr = Num | Ref | Neg | BinOp

_TOKEN = re.compile(r"\s+|(\d+(?:\.\d*)?|\.\d+)|([-+*/()])|(.)")


def parse_arithmetic(text: str) -> Expr:
    """Parse numbers, `+ - * /`, parentheses and unary minus into an `Expr` (ValueError if not that)."""
    if len(text) > MAX_EXPR_CHARS:
        raise ValueError(f"expression too long: over {MAX_EXPR_CHARS} characters")
    tokens: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.group(3):
            raise ValueError(f"unexpected character: {m.group(3)!r} in {text!r}")
        if m.group(1) or m.group(2):
            tokens.append(m.group(1) or m.group(2))
    expr, i = _parse_sum(tokens, 0, 0)
    if i != len(tokens):
        raise ValueError(f"trailing input: {text!r}")
    return expr


def _parse_left_assoc(tokens: list[str], i: int, depth: int, ops: tuple[str, ...], operand) -> tuple[Expr, int]:
    """`operand (op operand)*` for the operators `ops` of one precedence level, folded to the left."""
    left, i = operand(tokens, i, depth)
    while i < len(tokens) and tokens[i] in ops:
        right, j = operand(tokens, i + 1, depth)
        left, i = BinOp(tokens[i], left, right), j
    return left, i


def _parse_sum(tokens: list[str], i: int, depth: int) -> tuple[Expr, int]:
    return _parse_left_assoc(tokens, i, depth, ("+", "-"), _parse_product)


def _parse_product(tokens: list[str], i: int, depth: int) -> tuple[Expr, int]:
    return _parse_left_assoc(tokens, i, depth, ("*", "/"), _parse_unary)


def _parse_unary(tokens: list[str], i: int, depth: int) -> tuple[Expr, int]:
    if depth > MAX_DEPTH:
        raise ValueError(f"expression too deep: over {MAX_DEPTH} levels")
    if i >= len(tokens):
        raise ValueError("unexpected end of expression")
    tok = tokens[i]
    if tok == "-":
        operand, i = _parse_unary(tokens, i + 1, depth + 1)
        return Neg(operand), i
    if tok == "+":
        return _parse_unary(tokens, i + 1, depth + 1)
    if tok == "(":
        expr, i = _parse_sum(tokens, i + 1, depth + 1)
        if i >= len(tokens) or tokens[i] != ")":
            raise ValueError("unbalanced parenthesis")
        return expr, i + 1
    if tok[0].isdigit() or tok[0] == ".":
        if len(tok) > MAX_NUMBER_CHARS:
            raise ValueError(f"number too long: over {MAX_NUMBER_CHARS} characters")
        return Num(Fraction(tok)), i + 1
    raise ValueError(f"unexpected token: {tok!r}")


def evaluate(expr: Expr, values: Sequence[Fraction] = ()) -> Fraction:
    """Exact value of `expr`, with `Ref(j)` read from `values[j]` (ZeroDivisionError / ValueError if invalid)."""
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, Ref):
        return values[expr.step]
    if isinstance(expr, Neg):
        return -evaluate(expr.operand, values)
    a, b = evaluate(expr.left, values), evaluate(expr.right, values)
    out = {"+": a + b, "-": a - b, "*": a * b}[expr.op] if expr.op != "/" else a / b
    if abs(out) > MAX_MAGNITUDE:
        raise ValueError("value out of range")
    return out


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def render_expr(expr: Expr, values: Sequence[Fraction] = (), *, spaced: bool = False) -> str:
    """`expr` as text with the fewest parentheses; `Ref`s print the value they refer to."""
    text, _ = _render(expr, values, " " if spaced else "")
    return text


def _render(expr: Expr, values: Sequence[Fraction], sp: str) -> tuple[str, int]:
    """(text, precedence) with 3 for atoms and unary minus."""
    if isinstance(expr, Num | Ref):
        text = format_number(expr.value if isinstance(expr, Num) else values[expr.step])
        return (f"({text})" if text.startswith("-") else text), 3
    if isinstance(expr, Neg):
        inner, prec = _render(expr.operand, values, sp)
        return "-" + (inner if prec == 3 else f"({inner})"), 3
    prec = _PREC[expr.op]
    left, lp = _render(expr.left, values, sp)
    right, rp = _render(expr.right, values, sp)
    if lp < prec:
        left = f"({left})"
    if rp < prec or (rp == prec and expr.op in "-/") or right.startswith("-"):
        right = f"({right})"
    return f"{left}{sp}{expr.op}{sp}{right}", prec


def format_number(value: Fraction, like: str = "") -> str:
    """Decimal text of `value` (at most 6 places, else rounded to 2); `like` copies thousands commas and
    zero-padded decimals from the number it replaces (`130,000`, `4.00`)."""
    if 10**6 % value.denominator:
        value = round(value, 2)
    places = len(like.split(".")[1]) if "." in like and like.endswith("0") else 0
    k = max(places, next(k for k in range(7) if 10**k % value.denominator == 0))
    digits = str(abs(value.numerator) * 10**k // value.denominator).rjust(k + 1, "0")
    whole, frac = digits[: len(digits) - k], digits[len(digits) - k :]
    if "," in like:
        whole = f"{int(whole):,}"
    return ("-" if value < 0 else "") + whole + ("." + frac if k else "")


def number_value(text: str) -> Fraction:
    """Value of a number written with optional `$` and thousands commas."""
    return Fraction(text.replace(",", "").replace("$", ""))


# ---------------------------------------------------------------- programs: steps that refer to earlier steps


@dataclass(frozen=True)
class Step:
    """One calculation: `expr` and the result the CoT states for it (not always `evaluate(expr)`)."""

    expr: Expr
    value: Fraction


Program = tuple[Step, ...]


def _leaves(expr: Expr) -> Iterator[Num | Ref]:
    if isinstance(expr, Num | Ref):
        yield expr
    elif isinstance(expr, Neg):
        yield from _leaves(expr.operand)
    else:
        yield from _leaves(expr.left)
        yield from _leaves(expr.right)


def _map_leaves(expr: Expr, fn: Callable[[Num | Ref], Expr]) -> Expr:
    if isinstance(expr, Num | Ref):
        return fn(expr)
    if isinstance(expr, Neg):
        return Neg(_map_leaves(expr.operand, fn))
    return BinOp(expr.op, _map_leaves(expr.left, fn), _map_leaves(expr.right, fn))


def _shape(expr: Expr) -> Expr:
    """`expr` with every leaf blanked: two steps of equal shape differ only in their numbers."""
    return _map_leaves(expr, lambda _leaf: Num(Fraction(0)))


def leaf_values(expr: Expr, values: Sequence[Fraction]) -> list[Fraction]:
    return [leaf.value if isinstance(leaf, Num) else values[leaf.step] for leaf in _leaves(expr)]


def link_leaves(expr: Expr, prior: Sequence[Fraction], variables: Mapping[Fraction, int]) -> Expr:
    """Turn each literal into a `Ref` to the latest earlier step with that result, else into the question
    variable with that value, else keep it as a constant. [I] An earlier result wins over a question number of
    the same value, but only once per expression: in `3+3` after a step `7-4=3`, with "three more" in the
    question, the second 3 is the question's."""
    used: set[int] = set()

    def link(leaf: Num | Ref) -> Num | Ref:
        if isinstance(leaf, Ref):
            return leaf
        var = variables.get(leaf.value)
        for j in range(len(prior) - 1, -1, -1):
            if prior[j] == leaf.value and (var is None or j not in used):
                used.add(j)
                return Ref(j)
        return Num(leaf.value, var)

    return _map_leaves(expr, link)


def propagate(old: Program, exprs: Sequence[Expr], stated: Mapping[int, Fraction], *, decimals: int = 2,
              integer_only: bool = False) -> Program | None:
    """Re-run the program after a perturbation: steps whose expression and inputs are unchanged keep their
    stated result, `stated` forces a (wrong) result, every other step is recomputed and rounded to `decimals`
    places as a CoT would write it. None if a value is invalid (division by zero, out of range, or not an
    integer when `integer_only`)."""
    values: list[Fraction] = []
    for i, (step, expr) in enumerate(zip(old, exprs, strict=True)):
        refs_same = all(values[leaf.step] == old[leaf.step].value for leaf in _leaves(expr) if isinstance(leaf, Ref))
        if i in stated:
            value = stated[i]
        elif expr == step.expr and refs_same:
            value = step.value
        else:
            try:
                value = evaluate(expr, values)
            except (ZeroDivisionError, ValueError):
                return None
            if (value * 10**decimals).denominator != 1:
                value = round(value, decimals)
        if integer_only and value.denominator != 1:
            return None
        values.append(value)
    return tuple(Step(e, v) for e, v in zip(exprs, values, strict=True))
