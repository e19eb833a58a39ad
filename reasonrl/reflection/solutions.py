"""GSM8K reference solutions and synthetic-world gold traces: parsed into programs, perturbed, written back.

GSM8K programs come from the `<<a=b>>` calculator annotations, synthetic ones from the `a op b = c.` sentences;
rendering rewrites every number a perturbation changed (arXiv 2504.04022, App. F.1).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction

from reasonrl.reflection.perturbations import PerturbOptions, perturb_program
from reasonrl.reflection.programs import (
    BinOp,
    Expr,
    Num,
    Program,
    Ref,
    Step,
    _shape,
    evaluate,
    format_number,
    leaf_values,
    link_leaves,
    number_value,
    parse_arithmetic,
    render_expr,
)

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
                  opts: PerturbOptions = PerturbOptions()) -> tuple[str, str] | None:  # noqa: B008 (a frozen dataclass)
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
                      opts: PerturbOptions = PerturbOptions()) -> tuple[str, str] | None:  # noqa: B008 (a frozen dataclass)
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
