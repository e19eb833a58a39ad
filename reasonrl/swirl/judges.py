"""Judges and filters (arXiv 2504.04736 §2.1, App. E).

- Process judge: is this step reasonable given its context? GOOD / BAD, no gold answer. The paper asks Gemini
  1.5 Pro to consider only the last message, to judge a query by whether it is likely to help and an answer by
  whether it follows from the search results (not whether it is true), and to say BAD when the results do not
  hold enough information.
- Outcome judge: does the final answer match the gold answer? YES / NO.

Each comes as an LLM prompt for any local Hugging Face causal LM (the probability of " GOOD" vs " BAD", " YES"
vs " NO" at the next token) and as a programmatic judge for the toy worlds (seed-papers.md E.6: does the query
name the entity needed, does the expression compute a needed intermediate, does the answer follow from the
retrieved text), with optional label noise. A judge returns P(GOOD) or P(YES) in [0, 1].

Filters: none, process (every step GOOD), outcome (answer judged correct), both (the intersection).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from fractions import Fraction

from reasonrl.errors import UserError
from reasonrl.rollout.tools import calculator
from reasonrl.swirl.actions import parse_action
from reasonrl.swirl.episodes import decompose, final_answer
from reasonrl.swirl.worlds import ATTRIBUTES

FILTERS = ("none", "process", "outcome", "both")
ProcessJudge = Callable[[dict, str, str], float]  # (record, state, action text) -> P(GOOD)
OutcomeJudge = Callable[[dict, str | None], float]  # (record, final answer) -> P(YES)

_RESULT = re.compile(r"^(.+?) -> (.*)$", re.MULTILINE)


def tool_results(state: str) -> list[tuple[str, str]]:
    """(query, result) of every `QUERY -> RESULT` line of a state."""
    return [(m.group(1).strip(), m.group(2).strip()) for m in _RESULT.finditer(state)]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s.-]", " ", text.lower()).split()).strip(" .")


def _number(text: str) -> Fraction | None:
    try:
        return Fraction(text.strip().replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def same_answer(answer: str | None, gold: str) -> bool:
    """Normalised text equality, or equal numbers (`"36.0"` == `"36"`)."""
    if answer is None:
        return False
    a, g = _number(answer), _number(gold)
    if a is not None and g is not None:
        return a == g
    return _norm(answer) == _norm(gold)


# ----------------------------------------------------------------------------------------- programmatic judges


def _article_field(text: str, key: str) -> str | None:
    m = re.search(rf"\b{re.escape(key)}:? ([^.:]+)\.", text)
    return m.group(1).strip() if m else None


def qa_step_good(record: dict, state: str, kind: str | None, content: str) -> bool:
    """A query is GOOD if it names the question's person or, once that person's article is in the context, the
    related person it names, and was not asked before; an answer is GOOD if it is the asked attribute in the
    related person's retrieved article (it follows from the search results)."""
    results = tool_results(state)
    articles = {r.split(":", 1)[0].strip(): r for _, r in results if ":" in r and not r.startswith("error")}
    subject = record["subject"]
    bridge = _article_field(articles[subject], record["relation"]) if subject in articles else None
    if kind == "search":
        asked = {_norm(q) for q, _ in results}
        needed = {_norm(subject)} | ({_norm(bridge)} if bridge else set())
        return _norm(content) in needed and _norm(content) not in asked
    if kind == "answer":
        if bridge is None or bridge not in articles:
            return False
        value = _article_field(articles[bridge], ATTRIBUTES[record["attribute"]])
        return value is not None and same_answer(content, value)
    return False


def math_step_good(record: dict, state: str, kind: str | None, content: str) -> bool:
    """An expression is GOOD if it computes the next intermediate of the problem not yet computed in the
    context; an answer is GOOD once every intermediate is computed and it equals the last one."""
    computed = {_number(r) for _, r in tool_results(state)}
    needed = [Fraction(c) for *_, c in record["ops"]]
    missing = [c for c in needed if c not in computed]
    if kind == "math":
        return bool(missing) and _number(calculator(content)) == missing[0]
    if kind == "answer":
        return not missing and _number(content) == needed[-1]
    return False


def _flip(noise: float, seed: int, *parts: str) -> bool:
    """A deterministic coin with P(True) = noise, keyed by the judged text (the same step always gets one label)."""
    if noise <= 0:
        return False
    h = hashlib.sha256("|".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < noise


def program_process_judge(*, noise: float = 0.0, seed: int = 0) -> ProcessJudge:
    """The toy worlds' process judge; each label is flipped with probability `noise` (E.6: some label noise)."""

    def judge(record: dict, state: str, action: str) -> float:
        kind, content = parse_action(action)
        step_good = qa_step_good if record["task"] == "qa" else math_step_good
        good = step_good(record, state, kind, content)
        return float(good != _flip(noise, seed, "process", state, action))

    return judge


def program_outcome_judge(*, noise: float = 0.0, seed: int = 0) -> OutcomeJudge:
    def judge(record: dict, answer: str | None) -> float:
        good = same_answer(answer, record["answer"])
        return float(good != _flip(noise, seed, "outcome", record["prompt"], str(answer)))

    return judge


# ------------------------------------------------------------------------------------------------ LLM judges

PROCESS_PROMPT = (
    "You are checking one step of an assistant that answers a question with tools. Consider only the last step. "
    "A search query or calculation is GOOD if it is likely to help answer the question and does not repeat "
    "an earlier one. An answer is GOOD if it follows from the tool results shown, whether or not it is true; "
    "it is BAD if the results do not hold enough information. Reply GOOD or BAD.\n\n"
    "Context:\n{state}\nLast step: {action}\nJudgement:"
)
"""The process-filter prompt (paper App. E, search version), in our words [C: content; I: wording]."""

OUTCOME_PROMPT = (
    "Does the answer mean the same as the gold answer? Reply YES or NO.\n\n"
    "Question: {question}\nGold answer: {gold}\nAnswer: {answer}\nSame:"
)
"""The outcome grading prompt (YES / NO against the gold answer)."""


class LLMJudge:
    """P(yes) / (P(yes) + P(no)) at the first token where the two answer strings differ, after the formatted prompt
    and their shared leading tokens (a tiny byte-level tokenizer may split " GOOD" and " BAD" into " " + word).
    The prompt is cut from the left to `max_length` tokens (the judged step is at the end)."""

    def __init__(self, model, tokenizer, *, yes: str, no: str, max_length: int = 1024):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        y, n = tokenizer.encode(yes, add_special_tokens=False), tokenizer.encode(no, add_special_tokens=False)
        k = next((i for i, (a, b) in enumerate(zip(y, n, strict=False)) if a != b), None)
        if k is None:
            raise UserError(f"swirl judge: the tokenizer cannot tell {yes!r} from {no!r} by one token")
        self.shared, self.yes_id, self.no_id = y[:k], y[k], n[k]

    def prob(self, prompt: str) -> float:
        import torch

        ids = self.tokenizer.encode(prompt, add_special_tokens=False) + self.shared
        ids = torch.tensor([ids[-self.max_length :]])  # (1, T)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(device)).logits[0, -1].float()  # (V,)
        return torch.stack([logits[self.yes_id], logits[self.no_id]]).softmax(-1)[0].item()


def llm_process_judge(model, tokenizer, *, prompt: str = PROCESS_PROMPT) -> ProcessJudge:
    llm = LLMJudge(model, tokenizer, yes=" GOOD", no=" BAD")
    return lambda record, state, action: llm.prob(prompt.format(state=state, action=action))


def llm_outcome_judge(model, tokenizer, *, prompt: str = OUTCOME_PROMPT) -> OutcomeJudge:
    llm = LLMJudge(model, tokenizer, yes=" YES", no=" NO")
    return lambda record, answer: llm.prob(prompt.format(question=record.get("question", record["prompt"]),
                                                         gold=record["answer"], answer=answer or "(none)"))


def build_judges(spec: str, *, noise: float = 0.0, seed: int = 0, device=None) -> tuple[ProcessJudge, OutcomeJudge]:
    """`"program"`: the toy worlds' judges; otherwise a local HF model directory, asked with the LLM prompts."""
    if spec == "program":
        return program_process_judge(noise=noise, seed=seed), program_outcome_judge(noise=noise, seed=seed)
    from reasonrl.model.tiny import load_model

    model, tokenizer = load_model(spec, what="swirl.judge")
    model.eval().to(device or "cpu")
    return llm_process_judge(model, tokenizer), llm_outcome_judge(model, tokenizer)


# -------------------------------------------------------------------------------------------------------- filters


def label(trajectories: list[dict], process: ProcessJudge, outcome: OutcomeJudge) -> list[dict]:
    """Each trajectory with `process` (P(GOOD) per step) and `outcome` (P(YES) of its final answer)."""
    return [{**t, "process": [process(t, s, a) for s, a in decompose(t)], "outcome": outcome(t, final_answer(t))}
            for t in trajectories]


def keep(trajectory: dict, name: str) -> bool:
    """Whether a labelled trajectory passes filter `name` (a label counts as positive above 0.5)."""
    process_ok = bool(trajectory["process"]) and all(p > 0.5 for p in trajectory["process"])
    outcome_ok = trajectory["outcome"] > 0.5
    return {"none": True, "process": process_ok, "outcome": outcome_ok, "both": process_ok and outcome_ok}[name]


def apply_filter(trajectories: list[dict], name: str) -> list[dict]:
    if name not in FILTERS:
        raise UserError(f"swirl filter: unknown filter {name!r} (known: {', '.join(FILTERS)})")
    return [t for t in trajectories if keep(t, name)]
