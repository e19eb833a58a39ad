"""The seven perturbations of the situational-reflection set (arXiv 2504.04022, App. F.1) on a program.

Each perturbation yields candidate edits in a seeded order; `perturb_program` keeps the first whose change,
propagated through the dependent steps, alters the final answer (see `reasonrl.reflection.perturb`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from reasonrl.errors import UserError
from reasonrl.reflection.programs import BinOp, Expr, Num, Program, Ref, _leaves, _map_leaves, propagate

# ---------------------------------------------------------------- the seven perturbations

PERTURBATIONS: tuple[str, ...] = (
    "scale_first_variable",
    "first_op_arithmetic_error",
    "first_op_extraneous",
    "first_op_omission",
    "last_op_arithmetic_error",
    "last_op_extraneous",
    "last_op_omission",
)


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
