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

Layout: `programs` (safe arithmetic, programs, propagation), `perturbations` (the seven perturbations),
`solutions` (GSM8K solutions and synthetic traces to programs and back); this module builds the sets and prompts.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reasonrl.errors import UserError
from reasonrl.reflection.perturbations import PERTURBATIONS, PerturbOptions
from reasonrl.reflection.programs import format_number
from reasonrl.reflection.solutions import (
    Gsm8kSolution,
    SyntheticTrace,
    parse_gsm8k_solution,
    parse_synthetic_trace,
    perturb_gsm8k,
    perturb_synthetic,
)

# ---------------------------------------------------------------- dataset builders


def read_jsonl(path: str | Path, required: Sequence[str]) -> list[dict]:
    """Records of a JSON-lines file; UserError naming file:line for bad JSON or a missing key."""
    from reasonrl.tasks.datasets import read_objects

    rows = read_objects(path)  # size, UTF-8, JSON, one object a line, valid text: file:line messages
    for n, row in rows:
        missing = [k for k in required if k not in row]
        if missing:
            raise UserError(f"{path}:{n}: missing key {missing[0]!r}")
    return [row for _, row in rows]


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
                    opts: PerturbOptions = PerturbOptions()) -> tuple[list[dict], dict]:  # noqa: B008 (a frozen dataclass)
    """Situational-reflection set from a GSM8K jsonl (`question`, `answer`), paper Alg. 1 and App. F.1:
    records `{id, question, adversarial_cot, gold_answer, wrong_answer, perturbation}` with id
    `gsm8k-<row>/<perturbation>`, and stats `{num_items, unparseable: {reason: n}, kept: {perturbation: n},
    dropped: {perturbation: n}}`. Deterministic in `seed`."""
    rows = read_jsonl(path, required=("question", "answer"))
    items = [(f"gsm8k-{i}", r["question"], r["answer"]) for i, r in enumerate(rows)]
    return _build(items, parse_gsm8k_solution, perturb_gsm8k, seed=seed, perturbations=perturbations, opts=opts)


def build_synthetic_set(records: Sequence[Mapping], *, seed: int = 0, perturbations: Sequence[str] = PERTURBATIONS,
                        opts: PerturbOptions = PerturbOptions()) -> tuple[list[dict], dict]:  # noqa: B008 (a frozen dataclass)
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
