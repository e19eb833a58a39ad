"""The synthetic reasoning world: verifiable multi-step arithmetic word problems with gold chains of thought.

A problem starts from a count and applies `steps` changes (add, remove, multiply, split). The gold response
works it out one sentence per operation, `a op b = c.`, and ends with `The answer is \\boxed{c}.`:

    prompt:   Ana has 7 pens. She buys 5 more. She gives away 3. Then the pens are multiplied by 2.
              How many pens does Ana have now?
    response: Start with 7. 7 + 5 = 12. 12 - 3 = 9. 9 * 2 = 18. The answer is \\boxed{18}.

Two behaviours later components rely on can be mixed into the traces (fraction 0 gives the control corpus):

- a *slip*: one step is first written with a wrong result, then `Wait, a op b = c.` corrects it (reflection
  probes, concise RL);
- a *switch*: a first attempt is abandoned after some steps and `Alternatively,` restarts the work step by step
  (Retro-Search shortens such traces by removing the untaken detour).

Train and test never overlap: a problem's split is a hash of its arithmetic (start and operations), so the
same arithmetic with other names is always on the same side.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from fractions import Fraction

from reasonrl.config.sections import SYNTHETIC_LEVELS
from reasonrl.tasks.answers import extract_boxed


@dataclass(frozen=True)
class Level:
    steps: int
    max_start: int
    max_operand: int
    max_factor: int
    max_value: int
    ops: str


# Difficulty knob: more steps, larger numbers, more kinds of operation.
LEVELS: dict[int, Level] = {
    1: Level(steps=2, max_start=9, max_operand=9, max_factor=3, max_value=99, ops="+-"),
    2: Level(steps=3, max_start=20, max_operand=9, max_factor=3, max_value=99, ops="+-*"),
    3: Level(steps=4, max_start=50, max_operand=20, max_factor=5, max_value=999, ops="+-*/"),
    4: Level(steps=5, max_start=99, max_operand=50, max_factor=9, max_value=999, ops="+-*/"),
    5: Level(steps=6, max_start=999, max_operand=99, max_factor=9, max_value=9999, ops="+-*/"),
}
assert tuple(LEVELS) == SYNTHETIC_LEVELS, "config.sections.SYNTHETIC_LEVELS (checked by the config) names every level"

NAMES = [("Ana", "She", "her"), ("Ben", "He", "his"), ("Cleo", "She", "her"), ("Dan", "He", "his"),
         ("Eva", "She", "her"), ("Finn", "He", "his"), ("Gia", "She", "her"), ("Hugo", "He", "his"),
         ("Ines", "She", "her"), ("Jon", "He", "his"), ("Kira", "She", "her"), ("Leo", "He", "his")]
ITEMS = ["apples", "pens", "books", "coins", "stamps", "marbles", "cards", "shells", "stickers", "beads"]

TEST_FRACTION_MOD = 10  # one arithmetic pattern in ten is held out for test


@dataclass(frozen=True)
class Problem:
    start: int
    ops: tuple[tuple[str, int], ...]

    def values(self) -> list[int]:
        """Running values after each operation (start excluded)."""
        out, v = [], self.start
        for op, b in self.ops:
            v = apply_op(v, op, b)
            out.append(v)
        return out

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def split(self) -> str:
        key = f"{self.start}|" + "|".join(f"{op}{b}" for op, b in self.ops)
        h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
        return "test" if h % TEST_FRACTION_MOD == 0 else "train"


def apply_op(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    assert op == "/" and a % b == 0, f"inexact division {a} / {b}"
    return a // b


def render_prompt(problem: Problem, rng: random.Random) -> str:
    name, subj, _ = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    parts = [f"{name} has {problem.start} {item}."]
    for op, b in problem.ops:
        if op == "+":
            parts.append(rng.choice([f"{subj} buys {b} more.", f"{subj} finds {b} more.", f"{subj} gets {b} more."]))
        elif op == "-":
            parts.append(rng.choice([f"{subj} gives away {b}.", f"{subj} loses {b}.", f"{subj} sells {b}."]))
        elif op == "*":
            parts.append(f"Then the {item} are multiplied by {b}.")
        else:
            parts.append(f"{subj} splits the {item} into {b} equal piles and keeps one pile.")
    parts.append(f"How many {item} does {name} have now?")
    return " ".join(parts)


def _step(a: int, op: str, b: int, c: int) -> str:
    return f"{a} {op} {b} = {c}."


def render_gold(problem: Problem) -> list[str]:
    """The gold chain of thought as sentences (no final answer line)."""
    sentences = [f"Start with {problem.start}."]
    a = problem.start
    for (op, b), c in zip(problem.ops, problem.values(), strict=True):
        sentences.append(_step(a, op, b, c))
        a = c
    return sentences


def answer_line(answer: int | str) -> str:
    return f"The answer is \\boxed{{{answer}}}."


def render_response(problem: Problem, rng: random.Random, *, slip: bool, switch: bool) -> str:
    steps = render_gold(problem)
    if slip:
        i = rng.randrange(1, len(steps))  # a computation sentence, not "Start with"
        (op, b), c = problem.ops[i - 1], problem.values()[i - 1]
        a = problem.start if i == 1 else problem.values()[i - 2]
        wrong = c + rng.choice([-2, -1, 1, 2])
        steps[i] = f"{_step(a, op, b, wrong)} Wait, {_step(a, op, b, c)}"
    if switch and len(problem.ops) >= 2:
        k = rng.randrange(1, len(problem.ops))  # computation sentences done before abandoning the attempt
        detour = render_gold(problem)[: k + 1]
        steps = detour + ["Alternatively, go step by step from the start."] + steps
    return " ".join(steps + [answer_line(problem.answer)])


def generate(
    num: int,
    *,
    seed: int = 0,
    difficulty: int = 2,
    split: str = "train",
    slip_fraction: float = 0.0,
    alt_fraction: float = 0.0,
) -> list[dict]:
    """`num` problems of the given split as records `{id, prompt, response, answer, difficulty, kind}`.

    Deterministic in (seed, difficulty, split). `kind` is `gold`, `slip` or `switch`.
    """
    assert split in ("train", "test"), f"split must be train or test, got {split!r}"
    assert difficulty in LEVELS, f"difficulty must be one of {sorted(LEVELS)}, got {difficulty}"
    assert 0.0 <= slip_fraction <= 1.0 and 0.0 <= alt_fraction <= 1.0, "fractions must lie in [0, 1]"
    level = LEVELS[difficulty]
    rng = random.Random(f"synthetic|{seed}|{difficulty}|{split}")
    records: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(records) < num:
        attempts += 1
        assert attempts < 200 * num + 10_000, f"difficulty {difficulty} cannot supply {num} distinct {split} problems"
        problem = _sample(rng, level)
        if problem.split() != split:
            continue
        prompt = render_prompt(problem, rng)
        if prompt in seen:
            continue
        seen.add(prompt)
        u = rng.random()
        slip, switch = u < slip_fraction, slip_fraction <= u < slip_fraction + alt_fraction
        response = render_response(problem, rng, slip=slip, switch=switch)
        kind = "slip" if slip else "switch" if switch and len(problem.ops) >= 2 else "gold"
        records.append({"id": f"{split}-{difficulty}-{len(records)}", "prompt": prompt, "response": response,
                        "answer": str(problem.answer), "difficulty": difficulty, "kind": kind})
    return records


def _sample(rng: random.Random, level: Level) -> Problem:
    v = rng.randint(2, level.max_start)
    start = v
    ops: list[tuple[str, int]] = []
    for _ in range(level.steps):
        choices = [o for o in level.ops if _allowed(v, o, level)]
        op = rng.choice(choices)
        if op == "+":
            b = rng.randint(1, min(level.max_operand, level.max_value - v))
        elif op == "-":
            b = rng.randint(1, min(level.max_operand, v - 1))
        elif op == "*":
            b = rng.randint(2, min(level.max_factor, level.max_value // v))
        else:
            b = rng.choice([d for d in range(2, level.max_factor + 1) if v % d == 0])
        ops.append((op, b))
        v = apply_op(v, op, b)
    return Problem(start, tuple(ops))


def _allowed(v: int, op: str, level: Level) -> bool:
    if op == "+":
        return v < level.max_value
    if op == "-":
        return v >= 2
    if op == "*":
        return 2 * v <= level.max_value
    return any(v % d == 0 for d in range(2, level.max_factor + 1))


def verify(response: str, answer: str) -> bool:
    """Exact verifier for this world: the last `\\boxed{}` equals the answer as an integer or fraction."""
    pred = extract_boxed(response)
    if pred is None:
        return False
    try:
        return Fraction(pred.replace(",", "")) == Fraction(answer)
    except (ValueError, ZeroDivisionError):
        return False


def write_split(cfg, split: str, out: str, *, num: int | None = None) -> int:
    """Write `split` of the world configured by `cfg` (a DataConfig) to a JSONL file; returns the count."""
    from reasonrl.outputs import check_output_file, write_jsonl
    from reasonrl.tasks.sources import load_split

    path = check_output_file(out, "world --out")
    records = load_split(cfg, split, num=num)
    write_jsonl(path, records)
    print(f"wrote {len(records)} {split} problems (difficulty {cfg.difficulty}) to {path}")
    return len(records)
