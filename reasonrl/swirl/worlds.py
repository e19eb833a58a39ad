"""The two toy worlds of the CPU-scale reproduction (seed-papers.md E.6), with scripted trajectories.

- QA: 2-hop questions over a generated knowledge base of people ("Where was the manager of Alia Moss born?"):
  search the person, read the manager's name, search the manager, answer the city. One article per person.
- math: the synthetic world's arithmetic word problems (reasonrl.tasks.synthetic), one calculator call per
  operation, then the answer.

Records carry what the programmatic judges need: QA `subject`, `relation`, `attribute`; math `steps`
([a, op, b, c] per operation). `answer` is the gold answer (only the outcome judge reads it).
Scripted trajectories (gold, or with injected mistakes) are the SFT data of the base policy, whose samples at
temperature are then SWiRL's synthetic trajectories (E.6: "a tiny transformer pre-trained by SFT on a few
scripted trajectories, then sampled at temperature").
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from reasonrl.errors import UserError
from reasonrl.rollout.tools import calculator
from reasonrl.swirl.actions import format_action, format_result
from reasonrl.swirl.search import Article
from reasonrl.tasks import synthetic

MAX_STEPS = {"qa": 5, "math": 10}
"""The paper's step limits: 5 for HotPotQA, 10 for GSM8K (§2.1)."""
RELATIONS = ("manager", "mentor")
ATTRIBUTES = {"city": "born in", "company": "works for"}
QUESTION = {"city": "Where was the {rel} of {name} born?", "company": "Who does the {rel} of {name} work for?"}
_FIRST = ["Alia", "Bo", "Cy", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lux", "Mara", "Nils", "Oda",
          "Pim", "Quin", "Rhea", "Sol", "Tova", "Uma", "Vik", "Wren", "Xan", "Yara", "Zed"]
_LAST = ["Moss", "Lind", "Roe", "Vale", "Pike", "Hart", "Quill", "Stone", "Frey", "Dunn", "Ash", "Brook", "Cole",
         "Drake", "Fenn", "Gale", "Holt", "Ives", "Kerr", "Lowe"]
_CITIES = ["Tarrow", "Belmont", "Corin", "Dunmore", "Elston", "Farrow", "Glenby", "Harlow", "Ivel", "Jorvik",
           "Kelso", "Lyme", "Marsh", "Norrow", "Oakby", "Penrith"]
_COMPANIES = ["Vexa", "Orbis", "Nimbus", "Quarta", "Lumen", "Axiom", "Helix", "Zenith", "Corvid", "Tessel",
              "Bryce", "Kestrel"]


def instructions(task: str) -> str:
    return (f"Use <search_query>, <math_exp> or <answer>, one per step, at most {MAX_STEPS[task]} steps. "
            "Answer in a few words.")


def make_prompt(task: str, question: str) -> str:
    """State s_1 of a trajectory: the instructions and the question; every later step appends to it."""
    return f"{instructions(task)}\nQuestion: {question}\n"


# ---------------------------------------------------------------------------------------------------------- QA world


@dataclass(frozen=True)
class Person:
    name: str
    city: str
    company: str
    manager: str
    mentor: str

    def article(self) -> Article:
        return Article(self.name, f"born in {self.city}. works for {self.company}. manager: {self.manager}. "
                                  f"mentor: {self.mentor}.")


def knowledge_base(num_people: int = 120, seed: int = 0) -> list[Person]:
    """`num_people` people with distinct names, a city, a company, and a manager and mentor among the others."""
    rng = random.Random(f"swirl-kb|{seed}")
    names = [f"{f} {s}" for f in _FIRST for s in _LAST]
    assert num_people <= len(names), f"at most {len(names)} people"
    names = rng.sample(names, num_people)
    people = []
    for i, name in enumerate(names):
        others = names[:i] + names[i + 1 :]
        manager, mentor = rng.sample(others, 2)
        people.append(Person(name, rng.choice(_CITIES), rng.choice(_COMPANIES), manager, mentor))
    return people


def _split_of(key: str) -> str:
    return "test" if hashlib.sha256(key.encode()).digest()[0] % 5 == 0 else "train"


def qa_questions(people: list[Person], split: str) -> list[dict]:
    """Every (person, relation, attribute) question whose subject hashes to `split` (one subject in five is test)."""
    by_name = {p.name: p for p in people}
    out = []
    for p in people:
        if _split_of(p.name) != split:
            continue
        for rel in RELATIONS:
            bridge = by_name[getattr(p, rel)]
            for attr in ATTRIBUTES:
                question = QUESTION[attr].format(rel=rel, name=p.name)
                out.append({"id": f"qa-{split}-{len(out)}", "task": "qa", "prompt": make_prompt("qa", question),
                            "question": question, "answer": getattr(bridge, attr), "subject": p.name,
                            "relation": rel, "attribute": attr})
    return out


# -------------------------------------------------------------------------------------------------------- math world

_STEP = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)\.")


def math_questions(num: int, split: str, *, difficulty: int = 1, seed: int = 0) -> list[dict]:
    """Synthetic-world word problems as calculator tasks; `ops` are the gold operations [a, op, b, c]."""
    out = []
    for r in synthetic.generate(num, seed=seed, difficulty=difficulty, split=split, slip_fraction=0.0,
                                alt_fraction=0.0):
        ops = [[int(a), op, int(b), int(c)] for a, op, b, c in _STEP.findall(r["response"])]
        out.append({"id": f"math-{split}-{len(out)}", "task": "math", "prompt": make_prompt("math", r["prompt"]),
                    "question": r["prompt"], "answer": r["answer"], "ops": ops})
    return out


# ------------------------------------------------------------------------------------------- scripted trajectories


def _tool_step(kind: str, content: str, tools) -> dict:
    return {"text": format_action(kind, content), "kind": kind, "content": content, "result": tools[kind](content)}


def scripted_trajectory(record: dict, tools, rng: random.Random, *, mistake_rate: float = 0.0,
                        people: list[Person] | None = None) -> list[dict]:
    """Steps of a scripted solution of `record`; each step is replaced by a plausible mistake with probability
    `mistake_rate` (QA: search a wrong person or answer from the first hop; math: a wrong operand, an early answer).
    Tool results come from the real tools, so mistakes propagate as they would for a model."""
    steps: list[dict] = []
    if record["task"] == "qa":
        names = [p.name for p in people or []]
        first = _tool_step("search", record["subject"], tools)
        if names and rng.random() < mistake_rate:  # a wasted search before the right one
            steps.append(_tool_step("search", rng.choice(names), tools))
        steps.append(first)
        bridge = _field(first["result"], record["relation"])
        if bridge is None or rng.random() < mistake_rate:  # answer from the first hop: skips the second one
            value = _field(first["result"], ATTRIBUTES[record["attribute"]]) or "unknown"
            return steps + [_answer(value)]
        second = _tool_step("search", bridge, tools)
        steps.append(second)
        value = _field(second["result"], ATTRIBUTES[record["attribute"]]) or "unknown"
        if rng.random() < mistake_rate:
            value = rng.choice(_CITIES if record["attribute"] == "city" else _COMPANIES)
        return steps + [_answer(value)]
    value = None
    for i, (a, op, b, _) in enumerate(record["ops"]):
        left = a if i == 0 else value
        if rng.random() < mistake_rate:
            if i > 0 and rng.random() < 0.5:
                return steps + [_answer(str(value))]  # answers before the last operation
            b = b + rng.choice([-2, -1, 1, 2])
        step = _tool_step("math", f"{left} {op} {b}", tools)
        steps.append(step)
        value = step["result"]
    return steps + [_answer(str(value))]


def _answer(value: str) -> dict:
    return {"text": format_action("answer", value), "kind": "answer", "content": value, "result": None}


def _field(article_text: str, key: str) -> str | None:
    """The value after `key` in a knowledge-base article (`manager: Bo Lind.` -> `Bo Lind`)."""
    m = re.search(rf"\b{re.escape(key)}:? ([^.:]+)\.", article_text)
    return m.group(1).strip() if m else None


def world_tools(index) -> dict:
    """The tools every episode can call: search over `index` and the calculator."""
    return {"search": index.search, "math": calculator}


def render(prompt: str, steps: list[dict]) -> str:
    """The whole trajectory as text: s_1, then each action and, after a tool call, its `QUERY -> RESULT` line."""
    return prompt + "".join(s["text"] + (format_result(s["content"], s["result"]) if s["result"] is not None
                                         else "\n") for s in steps)


# ------------------------------------------------------------------------------------------------ from the config


def build_world(sw) -> tuple[object, list[Person]]:
    """(search index, people) of the configured world (`[swirl]`): the knowledge base's articles, plus the
    HotpotQA sample's paragraphs when `swirl.hotpotqa`."""
    from reasonrl.swirl.search import SearchIndex, hotpotqa_articles

    most = len(_FIRST) * len(_LAST)
    if sw.kb_people > most:
        raise UserError(f"swirl.kb_people: the generated knowledge base has at most {most} people, got {sw.kb_people}")
    people = knowledge_base(sw.kb_people, sw.kb_seed)
    articles = [p.article() for p in people] + (hotpotqa_articles() if sw.hotpotqa else [])
    return SearchIndex(articles, result_chars=sw.result_chars), people


def task_questions(sw, people: list[Person], split: str, *, task: str | None = None, num: int | None = None
                   ) -> list[dict]:
    """The `split` questions of `task` (default `swirl.task`), the first `num` of them (all: None)."""
    task = task or sw.task
    if task == "qa":
        out = qa_questions(people, split)
        out = out if num is None else out[:num]
    else:
        out = math_questions(num or 200, split, difficulty=sw.math_difficulty, seed=sw.kb_seed)
    if not out:  # a run on no questions would end "successfully" with nothing in it
        raise UserError(f"the swirl {task} world (swirl.kb_people = {sw.kb_people}, swirl.kb_seed = {sw.kb_seed}) has "
                        f"no {split} questions: use more people or another seed")
    return out


def step_limit(sw) -> callable:
    """record -> its step limit: `swirl.max_steps`, or the paper's 5 (QA) / 10 (math)."""
    return lambda record: sw.max_steps or MAX_STEPS[record["task"]]
