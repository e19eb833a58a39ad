"""Adversarial chains of thought for reflection probes (Rethinking Reflection in Pre-Training, arXiv 2504.04022).

Situational reflection (paper §3.1, Alg. 1) continues a chain of thought (CoT) written by someone else that
holds a deliberate error; self-reflection (Alg. 2) continues the model's own wrong CoT. The paper turns each
GSM8K reference solution into a Python program, has DeepSeek-V3 apply one of seven perturbations, and turns
the program back into text (App. F.1, `prompts/gsm8k_adv.py`). Here the same seven perturbations are
applied programmatically and deterministically to a small program parsed from the `<<a=b>>` calculator
annotations (GSM8K) or from the `a op b = c.` sentences of the synthetic world:

    1 scale_first_variable       multiply the first question variable by a factor
    2 first_op_arithmetic_error  swap the operator, or state a wrong result, in the first operation
    3 first_op_extraneous        fold an extra `* k` / `+ k` into the first operation
    4 first_op_omission          drop an operand of the first operation
    5 last_op_arithmetic_error   as 2, on the last operation
    6 last_op_extraneous         as 3, on the last operation
    7 last_op_omission           drop an operand of the last operation ("remove a calculation")

The change propagates through every step that depends on it (the paper re-executes the program) and items
whose final answer did not change are dropped (App. F.1: 9,233 generated, 9,070 kept). Where a perturbation
cannot change the answer, the next candidate is tried, as the paper's prompt asks ("choose a different
incorrect value or modify a different variable") [C]; the order of candidates is seeded [I].
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from reasonrl.errors import UserError

PERTURBATIONS: tuple[str, ...] = (
    "scale_first_variable",
    "first_op_arithmetic_error",
    "first_op_extraneous",
    "first_op_omission",
    "last_op_arithmetic_error",
    "last_op_extraneous",
    "last_op_omission",
)

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


def _parse_sum(tokens: list[str], i: int, depth: int) -> tuple[Expr, int]:
    left, i = _parse_product(tokens, i, depth)
    while i < len(tokens) and tokens[i] in ("+", "-"):
        right, j = _parse_product(tokens, i + 1, depth)
        left, i = BinOp(tokens[i], left, right), j
    return left, i


def _parse_product(tokens: list[str], i: int, depth: int) -> tuple[Expr, int]:
    left, i = _parse_unary(tokens, i, depth)
    while i < len(tokens) and tokens[i] in ("*", "/"):
        right, j = _parse_unary(tokens, i + 1, depth)
        left, i = BinOp(tokens[i], left, right), j
    return left, i


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


# ---------------------------------------------------------------- the seven perturbations


@dataclass(frozen=True)
class PerturbOptions:
    """Knobs of the seven perturbations; the paper leaves these to DeepSeek-V3, so every default is [I]."""

    scale_factors: tuple[int, ...] = (2, 3, 4, 5)
    """Factors for `scale_first_variable` (the paper's `{error_factor}` is not published)."""
    arithmetic_modes: tuple[str, ...] = ("swap_op", "miscalc")
    """Arithmetic errors: `swap_op` (+ <-> -, * <-> /) or `miscalc` (right operation, wrong stated result),
    the prompt's "addition instead of subtraction ... miscalculation"."""
    miscalc_deltas: tuple[int, ...] = (-2, -1, 1, 2)
    """Offsets of a miscalculated result (the synthetic world's own slips use the same)."""
    extraneous_ops: tuple[str, ...] = ("*", "+")
    """Operators of the extra calculation folded into an operation (the prompt's example is `* 3`)."""
    extraneous_operands: tuple[int, ...] = (2, 3, 4, 5)
    """Operands of the extra calculation."""
    omit_order: tuple[str, ...] = ("left", "right")
    """Which operand an omission keeps first (the prompt's examples keep the left one)."""
    decimals: int = 2
    """Recomputed results with more decimals are rounded to this many, as written in a CoT."""
    keep_answer_line: bool = False
    """Append the (wrong) final-answer line. The released task cuts the CoT before `\\n####` [C], so off."""

    def __post_init__(self) -> None:
        checks = {"arithmetic_modes": (self.arithmetic_modes, {"swap_op", "miscalc"}),
                  "extraneous_ops": (self.extraneous_ops, {"+", "-", "*", "/"}),
                  "omit_order": (self.omit_order, {"left", "right"})}
        for key, (given, allowed) in checks.items():
            if not given or not set(given) <= allowed:
                raise UserError(f"reflection options: {key} = {given!r}; use values from {sorted(allowed)}")
        if not self.scale_factors or 1 in self.scale_factors or 0 in self.scale_factors:
            raise UserError(f"reflection options: scale_factors = {self.scale_factors!r} must not be empty, 0 or 1")


def _first_op(program: Program) -> int | None:
    return next((i for i, s in enumerate(program) if isinstance(s.expr, BinOp)), None)


def _last_op(program: Program, answer_step: int) -> int | None:
    return next((i for i in range(answer_step, -1, -1) if isinstance(program[i].expr, BinOp)), None)


_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*"}

Candidate = tuple[list[Expr], dict[int, Fraction]]


def _with(program: Program, i: int, expr: Expr) -> list[Expr]:
    return [expr if j == i else s.expr for j, s in enumerate(program)]


def _scale_candidates(program: Program, rng: random.Random, opts: PerturbOptions) -> Iterator[Candidate]:
    """Perturbation 1: every use of the first question variable times a factor, then the next variables.
    [I] Variables are ordered as they appear in the question, as a program would initialise them."""
    variables = sorted({leaf.var for s in program for leaf in _leaves(s.expr)
                        if isinstance(leaf, Num) and leaf.var is not None})
    factors = rng.sample(opts.scale_factors, len(opts.scale_factors))
    for var in variables:
        for f in factors:
            def scale(leaf: Num | Ref, var: int = var, f: int = f) -> Num | Ref:
                return Num(leaf.value * f, var) if isinstance(leaf, Num) and leaf.var == var else leaf

            yield [_map_leaves(s.expr, scale) for s in program], {}


def _arithmetic_candidates(program: Program, i: int, rng: random.Random, opts: PerturbOptions) -> Iterator[Candidate]:
    """Perturbations 2 and 5: a swapped operator or a wrong stated result in operation `i`."""
    expr = program[i].expr
    assert isinstance(expr, BinOp)
    for mode in rng.sample(opts.arithmetic_modes, len(opts.arithmetic_modes)):
        if mode == "swap_op":
            yield _with(program, i, BinOp(_SWAP[expr.op], expr.left, expr.right)), {}
        else:
            for d in rng.sample(opts.miscalc_deltas, len(opts.miscalc_deltas)):
                yield [s.expr for s in program], {i: program[i].value + d}


def _extraneous_candidates(program: Program, i: int, rng: random.Random, opts: PerturbOptions) -> Iterator[Candidate]:
    """Perturbations 3 and 6: `expr` becomes `expr op k` inside the same operation."""
    pairs = [(op, k) for op in opts.extraneous_ops for k in opts.extraneous_operands]
    for op, k in rng.sample(pairs, len(pairs)):
        yield _with(program, i, BinOp(op, program[i].expr, Num(Fraction(k)))), {}


def _omission_candidates(program: Program, i: int, rng: random.Random, opts: PerturbOptions) -> Iterator[Candidate]:
    """Perturbations 4 and 7: operation `i` keeps one operand of its top-level operator."""
    expr = program[i].expr
    assert isinstance(expr, BinOp)
    for side in opts.omit_order:
        yield _with(program, i, expr.left if side == "left" else expr.right), {}


def perturb_program(program: Program, perturbation: str, *, answer_step: int, rng: random.Random,
                    opts: PerturbOptions = PerturbOptions(), integer_only: bool = False) -> Program | None:
    """The first candidate of `perturbation` that yields a valid program with a different final answer
    (`program[answer_step]`), or None when there is none (the item is dropped, paper App. F.1)."""
    if perturbation == "scale_first_variable":
        candidates = _scale_candidates(program, rng, opts)
    else:
        first = perturbation.startswith("first_op")
        i = _first_op(program) if first else _last_op(program, answer_step)
        if i is None:
            return None
        kind = perturbation.split("_op_")[1]
        make = {"arithmetic_error": _arithmetic_candidates, "extraneous": _extraneous_candidates,
                "omission": _omission_candidates}[kind]
        candidates = make(program, i, rng, opts)
    for exprs, stated in candidates:
        new = propagate(program, exprs, stated, decimals=opts.decimals, integer_only=integer_only)
        if new is not None and new[answer_step].value != program[answer_step].value:
            return new
    return None


# ---------------------------------------------------------------- GSM8K reference solutions

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>=]*)>>")
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+")
_RESULT = re.compile(r"\$?(" + _NUMBER.pattern + ")")  # the result written right after `>>`
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
                                                      "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100}


@dataclass(frozen=True)
class Gsm8kSolution:
    """A GSM8K reference solution as a program, with where each step sits in the text."""

    body: str  # the solution without its `#### answer` line
    program: Program
    spans: tuple[tuple[int, int], ...]  # (start, end) of each `<<expr=value>>` in body
    answer_step: int  # the last step whose result is the gold answer
    gold: str  # the gold answer as written after `####`


def question_variables(question: str) -> dict[Fraction, int]:
    """Numbers of the question (digits and number words) -> variable id, by first appearance."""
    found = [(m.start(), number_value(m.group())) for m in _NUMBER.finditer(question)]
    found += [(m.start(), Fraction(_NUMBER_WORDS[m.group().lower()]))
              for m in re.finditer(r"[A-Za-z]+", question) if m.group().lower() in _NUMBER_WORDS]
    out: dict[Fraction, int] = {}
    for _, value in sorted(found, key=lambda t: t[0]):
        out.setdefault(value, len(out))
    return out


def parse_gsm8k_solution(question: str, answer: str) -> Gsm8kSolution:
    """Program of a GSM8K solution from its calculator annotations (ValueError if it has none that compute
    the gold answer, or an annotation is not plain arithmetic)."""
    body, sep, gold_text = answer.rpartition("\n####")
    if not sep:
        raise ValueError("no final answer line: expected '#### answer'")
    gold = number_value(gold_text.strip())
    variables = question_variables(question)
    steps: list[Step] = []
    spans: list[tuple[int, int]] = []
    for m in _ANNOTATION.finditer(body):
        expr = parse_arithmetic(m.group(1))
        value = number_value(m.group(2).strip())
        if abs(evaluate(expr) - value) > Fraction(1, 100) * max(1, abs(value)):
            raise ValueError(f"annotation does not compute: {m.group()}")
        steps.append(Step(link_leaves(expr, [s.value for s in steps], variables), value))
        spans.append((m.start(), m.end()))
    answer_steps = [i for i, s in enumerate(steps) if s.value == gold]
    if not answer_steps:
        raise ValueError("final answer not computed by an annotation")
    return Gsm8kSolution(body, tuple(steps), tuple(spans), answer_steps[-1], gold_text.strip())


def render_gsm8k(solution: Gsm8kSolution, new: Program) -> str:
    """The reference solution with the perturbed numbers: annotations, the results written after them, the
    visible equations before them, and mentions of the final answer after the last step. Other prose is kept
    as written (a number restated in words elsewhere is not updated)."""
    old, body = solution.program, solution.body
    old_values, new_values = [s.value for s in old], [s.value for s in new]
    edits: list[tuple[int, int, str]] = []
    prev_end = 0
    for i, (start, end) in enumerate(solution.spans):
        result = _RESULT.match(body, end)
        seg_start = max(prev_end, body.rfind("\n", 0, start) + 1)
        prev_end = result.end() if result else end
        o_leaves, n_leaves = leaf_values(old[i].expr, old_values), leaf_values(new[i].expr, new_values)
        same_shape = _shape(old[i].expr) == _shape(new[i].expr)
        if same_shape and o_leaves == n_leaves and old[i].value == new[i].value:
            continue
        edits.append((start, end, f"<<{render_expr(new[i].expr, new_values)}={format_number(new[i].value)}>>"))
        if result and old[i].value != new[i].value:
            a, b = result.start(1), result.end(1)
            edits.append((a, b, format_number(new[i].value, like=body[a:b])))
        edits += _visible_edits(body, seg_start, start, old[i].value, new[i].value, o_leaves, n_leaves, new[i].expr,
                                new_values, same_shape)
    old_answer, new_answer = old[solution.answer_step].value, new[solution.answer_step].value
    for m in _NUMBER.finditer(body, prev_end):
        if number_value(m.group()) == old_answer:
            edits.append((m.start(), m.end(), format_number(new_answer, like=m.group())))
    for a, b, text in sorted(edits, reverse=True):
        body = body[:a] + text + body[b:]
    return body


def _visible_edits(body: str, seg_start: int, seg_end: int, old_value: Fraction, new_value: Fraction,
                   o_leaves: list[Fraction], n_leaves: list[Fraction], new_expr: Expr, new_values: list[Fraction],
                   same_shape: bool) -> list[tuple[int, int, str]]:
    """Edits to the text before an annotation on its line: the written equation (`16 - 3 - 4 = <<...>>`), found
    as the numbers just before a trailing `=` whose values are the old operands; and, before that equation,
    mentions of the old result or of changed operands (`It can go 600 MPH because 5 x 120 = <<...>>`)."""
    tokens = list(_NUMBER.finditer(body, seg_start, seg_end))
    eq = re.search(r"=\s*\$?\s*$", body[seg_start:seg_end])
    n = len(o_leaves)
    in_eq = tokens[-n:] if eq and len(tokens) >= n else []
    if sorted(number_value(m.group()) for m in in_eq) != sorted(o_leaves):
        in_eq = []
    eq_start = in_eq[0].start() if in_eq else seg_end
    if in_eq:  # the written equation may hold more numbers than the annotation (`1/5 * 5000 = <<5000/5=1000>>`)
        more = re.search(r"(?:[\d.,]+\s*[-+*/x\u00d7]\s*)+$", body[seg_start:eq_start])
        eq_start = seg_start + more.start() if more else eq_start
    while eq_start > seg_start and body[eq_start - 1] in "$(":
        eq_start -= 1
    changed = {o: nv for o, nv in zip(o_leaves, n_leaves, strict=True) if o != nv} if same_shape else {}
    if old_value != new_value:
        changed[old_value] = new_value
    edits = [(m.start(), m.end(), format_number(changed[v], like=m.group()))
             for m in tokens if m.start() < eq_start and (v := number_value(m.group())) in changed]
    if not in_eq:
        return edits
    if not same_shape:
        old_text = body[eq_start : seg_start + eq.start()]
        text = render_expr(new_expr, new_values, spaced=" " in old_text.strip())
        return edits + [(eq_start, seg_start + eq.start(), text + (" " if old_text.endswith(" ") else ""))]
    if [number_value(m.group()) for m in in_eq] == o_leaves:  # written in the annotation's order
        pairs = list(zip(in_eq, n_leaves, strict=True))
    else:  # reordered (`125 people + 13 people = <<13+125=138>>`): match by value
        pairs, used = [], set()
        for o, nv in zip(o_leaves, n_leaves, strict=True):
            m = next(m for m in in_eq if m.start() not in used and number_value(m.group()) == o)
            used.add(m.start())
            pairs.append((m, nv))
    for m, nv in pairs:
        if number_value(m.group()) != nv:
            text = format_number(nv, like=m.group())
            edits.append((m.start(), m.end(), f"({text})" if nv < 0 else text))
    return edits


def perturb_gsm8k(solution: Gsm8kSolution, perturbation: str, *, rng: random.Random,
                  opts: PerturbOptions = PerturbOptions()) -> tuple[str, str] | None:
    """(adversarial_cot, wrong_answer) of a parsed GSM8K solution, or None if the answer cannot change."""
    new = perturb_program(solution.program, perturbation, answer_step=solution.answer_step, rng=rng, opts=opts)
    if new is None:
        return None
    wrong = format_number(new[solution.answer_step].value)
    return render_gsm8k(solution, new) + (f"\n#### {wrong}" if opts.keep_answer_line else ""), wrong


# ---------------------------------------------------------------- the synthetic world (`a op b = c.` sentences)

_SYN_START = re.compile(r"Start with (-?\d+)\.")
_SYN_STEP = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)\.")
_SYN_ANSWER = re.compile(r"The answer is \\boxed\{([^{}]*)\}\.?")


def parse_synthetic_trace(trace: str) -> tuple[Program, tuple[tuple[int, int], ...]]:
    """Program of a gold synthetic trace `Start with 7. 7 + 5 = 12. ... The answer is \\boxed{18}.`:
    step 0 is the start (question variable 0), step k is `Ref(k-1) op b` with `b` question variable k.
    Spans are the sentences. ValueError for traces with slips, switches or other text between steps."""
    start = _SYN_START.match(trace)
    if start is None:
        raise ValueError("not a gold trace: does not begin with 'Start with N.'")
    steps = [Step(Num(Fraction(int(start.group(1))), 0), Fraction(int(start.group(1))))]
    spans = [start.span()]
    pos = start.end()
    for m in _SYN_STEP.finditer(trace, pos):
        if trace[pos : m.start()].strip():
            raise ValueError(f"not a gold trace: text {trace[pos:m.start()].strip()!r} between steps")
        a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        expr = BinOp(op, Ref(len(steps) - 1), Num(Fraction(b), len(steps)))
        if a != steps[-1].value or evaluate(expr, [s.value for s in steps]) != c:
            raise ValueError(f"not a gold trace: step {m.group()!r} does not follow")
        steps.append(Step(expr, Fraction(c)))
        spans.append(m.span())
        pos = m.end()
    rest = trace[pos:].strip()
    if len(steps) < 2 or (rest and not _SYN_ANSWER.fullmatch(rest)):
        raise ValueError(f"not a gold trace: {rest[:40]!r} after the steps")
    return tuple(steps), tuple(spans)


@dataclass(frozen=True)
class SyntheticTrace:
    """A gold synthetic trace as a program, with the span of each sentence."""

    text: str
    program: Program
    spans: tuple[tuple[int, int], ...]


def render_synthetic(trace: SyntheticTrace, new: Program) -> str:
    """The trace up to its last step, with every changed sentence rewritten (`14 + 5 = 19.`)."""
    old_values, new_values = [s.value for s in trace.program], [s.value for s in new]
    text = trace.text[: trace.spans[-1][1]]
    for i in range(len(new) - 1, -1, -1):
        old, expr = trace.program[i], new[i].expr
        if old == new[i] and leaf_values(old.expr, old_values) == leaf_values(expr, new_values):
            continue
        sentence = (f"Start with {format_number(new_values[0])}." if i == 0 and isinstance(expr, Num)
                    else f"{render_expr(expr, new_values, spaced=True)} = {format_number(new_values[i])}.")
        text = text[: trace.spans[i][0]] + sentence + text[trace.spans[i][1] :]
    return text


def perturb_synthetic(trace: SyntheticTrace, perturbation: str, *, rng: random.Random,
                      opts: PerturbOptions = PerturbOptions()) -> tuple[str, str] | None:
    """(adversarial_cot, wrong_answer) of a synthetic gold trace, integers only, or None if the answer cannot
    change. The CoT stops after the last step: the `The answer is \\boxed{}` sentence is removed (the analogue
    of cutting GSM8K's `####` line) unless `opts.keep_answer_line`."""
    last = len(trace.program) - 1
    new = perturb_program(trace.program, perturbation, answer_step=last, rng=rng, opts=opts, integer_only=True)
    if new is None:
        return None
    wrong = format_number(new[last].value)
    answer_line = f" The answer is \\boxed{{{wrong}}}." if opts.keep_answer_line else ""
    return render_synthetic(trace, new) + answer_line, wrong


# ---------------------------------------------------------------- dataset builders


def read_jsonl(path: str | Path, required: Sequence[str]) -> list[dict]:
    """Records of a JSON-lines file; UserError naming file:line for bad JSON or a missing key."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            missing = [k for k in required if not isinstance(row, dict) or k not in row]
            if missing:
                raise UserError(f"{path}:{n}: missing key {missing[0]!r}")
            rows.append(row)
    return rows


def _build(items: Sequence[tuple[str, str, str]], parse: Callable, perturb: Callable, *, seed: int,
           perturbations: Sequence[str], opts: PerturbOptions) -> tuple[list[dict], dict]:
    """Parse each (id, question, solution) once, apply every perturbation with its own seeded rng, and count
    what was kept, dropped (answer unchanged) and unparseable (by the reason before the first ':')."""
    unknown = [p for p in perturbations if p not in PERTURBATIONS]
    if unknown:
        raise UserError(f"perturbations: unknown {unknown[0]!r}; choose from {', '.join(PERTURBATIONS)}")
    records: list[dict] = []
    unparseable: Counter[str] = Counter()
    kept, dropped = Counter({p: 0 for p in perturbations}), Counter({p: 0 for p in perturbations})
    for item_id, question, solution in items:
        try:
            parsed = parse(question, solution)
        except ValueError as e:
            unparseable[str(e).split(":")[0]] += 1
            continue
        for name in perturbations:
            out = perturb(parsed, name, rng=random.Random(f"{seed}|{item_id}|{name}"), opts=opts)
            if out is None:
                dropped[name] += 1
                continue
            kept[name] += 1
            records.append({"id": f"{item_id}/{name}", "question": question, "adversarial_cot": out[0],
                            "gold_answer": _gold(parsed), "wrong_answer": out[1], "perturbation": name})
    stats = {"num_items": len(items), "unparseable": dict(unparseable), "kept": dict(kept), "dropped": dict(dropped)}
    return records, stats


def _gold(parsed: Gsm8kSolution | SyntheticTrace) -> str:
    if isinstance(parsed, Gsm8kSolution):
        return parsed.gold
    return format_number(parsed.program[-1].value)


def build_gsm8k_set(path: str | Path, *, seed: int = 0, perturbations: Sequence[str] = PERTURBATIONS,
                    opts: PerturbOptions = PerturbOptions()) -> tuple[list[dict], dict]:
    """Situational-reflection set from a GSM8K jsonl (`question`, `answer`), paper Alg. 1 and App. F.1:
    records `{id, question, adversarial_cot, gold_answer, wrong_answer, perturbation}` with id
    `gsm8k-<row>/<perturbation>`, and stats `{num_items, unparseable: {reason: n}, kept: {perturbation: n},
    dropped: {perturbation: n}}`. Deterministic in `seed`."""
    rows = read_jsonl(path, required=("question", "answer"))
    items = [(f"gsm8k-{i}", r["question"], r["answer"]) for i, r in enumerate(rows)]
    return _build(items, parse_gsm8k_solution, perturb_gsm8k, seed=seed, perturbations=perturbations, opts=opts)


def build_synthetic_set(records: Sequence[Mapping], *, seed: int = 0, perturbations: Sequence[str] = PERTURBATIONS,
                        opts: PerturbOptions = PerturbOptions()) -> tuple[list[dict], dict]:
    """The same set from synthetic-world records (`id`, `prompt`, `response`, as written by
    `reasonrl.tasks.synthetic.generate`); responses with slips or switches count as unparseable."""
    items = []
    for i, r in enumerate(records):
        missing = [k for k in ("id", "prompt", "response") if k not in r]
        if missing:
            raise UserError(f"records[{i}]: missing key {missing[0]!r}")
        items.append((str(r["id"]), r["prompt"], r["response"]))

    def parse(question: str, response: str) -> SyntheticTrace:
        return SyntheticTrace(response, *parse_synthetic_trace(response))

    return _build(items, parse, perturb_synthetic, seed=seed, perturbations=perturbations, opts=opts)


def self_reflection_set(results_by_ckpt: Mapping[str, Sequence[Mapping]]) -> dict[str, list[dict]]:
    """Self-reflection sets (paper Alg. 2): for each checkpoint its own wrong CoT on the questions that every
    checkpoint of the series got wrong, so the question set is the same for all of them.

    `results_by_ckpt[ckpt]` lists `{id, question, cot, correct, gold_answer}` (optional `answer`: the model's
    final answer), one per question. Returns `{ckpt: [{id, question, adversarial_cot, gold_answer,
    wrong_answer, perturbation: "self"}]}` in the first checkpoint's question order."""
    wrong_by_ckpt: dict[str, dict[str, Mapping]] = {}
    for ckpt, results in results_by_ckpt.items():
        wrong: dict[str, Mapping] = {}
        seen: set[str] = set()
        for i, r in enumerate(results):
            missing = [k for k in ("id", "question", "cot", "correct", "gold_answer") if k not in r]
            if missing:
                raise UserError(f"results[{ckpt!r}][{i}]: missing key {missing[0]!r}")
            if r["id"] in seen:
                raise UserError(f"results[{ckpt!r}][{i}]: duplicate id {r['id']!r}")
            seen.add(r["id"])
            if not r["correct"]:
                wrong[r["id"]] = r
        wrong_by_ckpt[ckpt] = wrong
    if not wrong_by_ckpt:
        return {}
    common = set.intersection(*(set(w) for w in wrong_by_ckpt.values()))
    return {ckpt: [{"id": qid, "question": r["question"], "adversarial_cot": r["cot"],
                    "gold_answer": str(r["gold_answer"]), "wrong_answer": str(r.get("answer", "")),
                    "perturbation": "self"} for qid, r in wrong.items() if qid in common]
            for ckpt, wrong in wrong_by_ckpt.items()}


# ---------------------------------------------------------------- prompts and triggers

TRIGGERS: dict[str, str] = {"none": "", "wait": "Wait,", "mistake": "Wait, I made a mistake"}
"""Named triggers of the paper's ablation (§5.2): none, the standard "Wait,", and "Wait, I made a mistake"."""

GSM8K_TEMPLATE = ("Answer the question: \n\n{question}\nPlease always end your response with the final numerical "
                  "answer.\n Let\u2019s solve this step by step \u2026 {cot}{trigger}")
"""The released `gsm8k_adv` task's continuation prompt [C] (`tasks/gsm8k_adv/preprocess_gsm8k_adv.py`)."""

SYNTHETIC_TEMPLATE = "{question}\n{cot}{trigger}"
"""Synthetic world [I]: prompt, newline, CoT (the raw join the project's tokenizer is trained on). For a model
with a chat template compose it, e.g. `format_prompt(tokenizer, "{question}") + "{cot}{trigger}"`."""

SYNTHETIC_TRIGGER_FORMAT = " {trigger}"
"""[I] No trailing space, so the continuation's first token is the one seen after `Wait,` in the synthetic
world's slips (`12 - 3 = 10. Wait, 12 - 3 = 9.`)."""


def build_prompt(item: Mapping, *, trigger: str | None = "Wait,", template: str = GSM8K_TEMPLATE,
                 trigger_format: str = " {trigger} ") -> str:
    """Model input: `template` with `{question}`, `{cot}` (the adversarial CoT) and `{trigger}` filled in.
    A trigger is written with `trigger_format`, by default `" Wait, "` as in the released tasks [C]; an empty or
    None trigger writes nothing (the paper's no-trigger ablation, §5.2)."""
    for key in ("question", "adversarial_cot"):
        if key not in item:
            raise UserError(f"reflection item {item.get('id', '?')!r}: missing key {key!r}")
    if "{cot}" not in template:
        raise UserError(f"reflection template {template!r} must contain {{cot}}")
    if trigger and "{trigger}" not in template:
        raise UserError(f"reflection template {template!r} must contain {{trigger}} to use trigger {trigger!r}")
    fills = {"question": item["question"], "cot": item["adversarial_cot"],
             "trigger": trigger_format.replace("{trigger}", trigger) if trigger else ""}
    return re.sub(r"\{(question|cot|trigger)\}", lambda m: fills[m.group(1)], template)
