"""Judges and filters (arXiv 2504.04736 §2.1, App. E).

- Process judge: is this step reasonable given its context? GOOD / BAD, no gold answer. The paper asks Gemini
  1.5 Pro to consider only the last message, to judge a query by whether it is likely to help and an answer by
  whether it follows from the search results (not whether it is true), and to say BAD when the results do not
  hold enough information.
- Outcome judge: does the final answer match the gold answer? YES / NO.

Each comes as an LLM prompt for any local Hugging Face causal LM (the probability of " GOOD" vs " BAD", " YES"
vs " NO" at the next token) and as a programmatic judge for the toy worlds, with optional label noise. The
programmatic process judge is local like the paper's: it reads the state and the action, never the record's
gold fields (`answer`, `ops`, `subject`, ...), so a trajectory of sensible steps can end in a wrong answer (the
case that lets process-only filtering differ from outcome filtering). QA: does the query name an entity of the
question or of a retrieved article, does a retrieved article state the answer; math: is the expression an
operation over numbers the state shows, not a repeat, moving the question's count along (`math_step_good`).
Only the outcome judge reads the gold answer. A judge returns P(GOOD) or P(YES) in [0, 1].

Filters: none, process (every step GOOD), outcome (answer judged correct), both (the intersection).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from reasonrl.errors import UserError
from reasonrl.rollout.tools import calculator
from reasonrl.swirl.actions import parse_action
from reasonrl.swirl.episodes import decompose, final_answer

FILTERS = ("none", "process", "outcome", "both")
ProcessJudge = Callable[[dict, str, str], float]  # (record, state, action text) -> P(GOOD)
OutcomeJudge = Callable[[dict, str | None], float]  # (record, final answer) -> P(YES)

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
#
# The process judges read only the state (the question line and the earlier tool calls and results) and the
# judged action: the paper's judge sees the context, never the gold answer (App. E). So a step can be GOOD and the
# trajectory still wrong (a sensible operation with the wrong operator, an answer read off the wrong article),
# which is what makes process-only filtering differ from outcome filtering (§2.1, Fig. 3-4). The outcome judge
# alone compares with the gold answer.

_QUESTION = re.compile(r"^Question: (.*)$", re.MULTILINE)
_CALL = re.compile(r"<(search_query|math_exp)>([^<]*)</\1>\n([^\n]*)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ENTITY = re.compile(r"[A-Z][\w'-]*(?: [A-Z][\w'-]*)*")
_QUESTION_WORDS = {"where", "who", "whom", "whose", "what", "which", "when", "why", "how", "is", "was", "are",
                   "were", "does", "did", "do", "the", "a", "an", "in", "of"}
ASKED_FIELDS = (("born", "born in"), ("work for", "works for"))
"""(question cue, article field): a question with the cue asks for that field of an article (the QA world's
articles: `born in Tarrow. works for Vexa. manager: ...`). Other questions take any phrase an article states."""


def question_text(state: str) -> str:
    """The state's `Question: ...` line (what `worlds.make_prompt` writes), or "" when it has none."""
    m = _QUESTION.search(state)
    return m.group(1).strip() if m else ""


def tool_calls(state: str) -> list[tuple[str, str, str]]:
    """(kind "search" | "math", content, result) of every tool call in a state, in order."""
    out = []
    for m in _CALL.finditer(state):
        kind, content = ("search" if m.group(1) == "search_query" else "math"), m.group(2).strip()
        head = " ".join(f"{content} ->".split()) + " "
        line = m.group(3)
        out.append((kind, content, line[len(head):].strip() if line.startswith(head) else ""))
    return out


def _article_field(text: str, key: str) -> str | None:
    m = re.search(rf"\b{re.escape(key)}:? ([^.:]+)\.", text)
    return m.group(1).strip() if m else None


def _entities(text: str) -> set[str]:
    """Normalised names in `text`: runs of capitalised words, leading question words dropped."""
    out = set()
    for span in _ENTITY.findall(text):
        words = span.split()
        while words and words[0].lower() in _QUESTION_WORDS:
            words = words[1:]
        if words:
            out.add(_norm(" ".join(words)))
    return out


def qa_step_good(state: str, kind: str | None, content: str) -> bool:
    """Judged from the state alone (no gold). A query is GOOD if it names an entity that the question or a
    retrieved article names, was not asked before and is not the title of an article already retrieved; an
    answer is GOOD if a retrieved article states it (as the field the question asks for, when the question asks
    for a known one: "born" -> `born in`, "work for" -> `works for`) and it is not a name the question itself
    holds. An answer read off the wrong article is GOOD and wrong: the judge checks that it follows from the
    results, not that it is true (App. E)."""
    question = question_text(state)
    searches = [(q, r) for k, q, r in tool_calls(state) if k == "search"]
    articles = [r for _, r in searches if r and not r.startswith("error")]
    titles = {_norm(a.split(":", 1)[0]) for a in articles if ":" in a}
    if kind == "search":
        named = _entities(question).union(*(_entities(a) for a in articles))
        asked = {_norm(q) for q, _ in searches}
        query = _norm(content)
        return query in named and query not in asked and query not in titles
    if kind == "answer":
        answer = _norm(content)
        if not answer or answer in _entities(question):
            return False
        fields = [f for cue, f in ASKED_FIELDS if cue in question.lower()]
        for article in articles:
            body = article.split(":", 1)[1] if ":" in article else article
            if fields:
                if any(same_answer(content, v) for f in fields if (v := _article_field(body, f)) is not None):
                    return True
            elif re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", _norm(body)):
                return True
    return False


def _operands(expr: str) -> list[Fraction]:
    """The numbers of an arithmetic expression that `calculator` accepts, a unary minus kept (`3 - -1`: 3, -1)."""
    out: list[Fraction] = []

    def walk(node: ast.AST, sign: int = 1) -> None:
        if isinstance(node, ast.Constant):
            out.append(sign * Fraction(node.value))
        elif isinstance(node, ast.UnaryOp):
            walk(node.operand, -sign if isinstance(node.op, ast.USub) else sign)
        elif isinstance(node, ast.BinOp):
            walk(node.left)
            walk(node.right)

    walk(ast.parse(expr.strip(), mode="eval").body)
    return out


def _new_numbers(operands: list[Fraction], latest: Fraction | None) -> list[Fraction]:
    """The operands besides (one occurrence of) the running count `latest`: what the step brings in."""
    rest = list(operands)
    if latest is not None and latest in rest:
        rest.remove(latest)
    return rest


def math_step_good(state: str, kind: str | None, content: str) -> bool:
    """Judged from the state alone (no gold). An expression is GOOD if it is an operation (two or more numbers)
    over numbers that the question or an earlier result shows; does not repeat an earlier expression from the
    same running count; gives a count (a number >= 0, as "how many" asks); after the first, builds on the latest
    result (the question applies its changes to one running count); and brings in a number of the question that
    no earlier expression used. An answer is GOOD once every number of the question has been used and it equals
    the latest result. A wrong operator (`9 + 8` where the story says "loses 8") is GOOD and leads to a wrong
    answer: the judge checks that the step is a sensible move, not that it is right."""
    given = [Fraction(x) for x in _NUMBER.findall(question_text(state))]
    unused, latest, seen, results = Counter(given), None, set(), set()
    for k, expr, result in tool_calls(state):
        value = _number(result)
        if k != "math" or value is None or calculator(expr).startswith("error"):
            continue
        for x in _new_numbers(_operands(expr), latest):
            if unused[x] > 0:
                unused[x] -= 1
        seen.add(("".join(expr.split()), latest))
        latest = value
        results.add(value)
    if kind == "math":
        value = _number(calculator(content))
        if value is None or value < 0 or ("".join(content.split()), latest) in seen:
            return False
        operands = _operands(content)
        if len(operands) < 2 or (latest is not None and latest not in operands):
            return False
        shown = set(given) | results
        return all(x in shown for x in operands) and any(unused[x] > 0 for x in _new_numbers(operands, latest))
    if kind == "answer":
        return latest is not None and not +unused and _number(content) == latest
    return False


def _flip(noise: float, seed: int, *parts: str) -> bool:
    """A deterministic coin with P(True) = noise, keyed by the judged text (the same step always gets one label)."""
    if noise <= 0:
        return False
    h = hashlib.sha256("|".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < noise


STEP_JUDGES = {"qa": qa_step_good, "math": math_step_good}
"""The programmatic process judge's rule by a state's `task`: all it reads of a record (the rest is the state)."""


def program_process_judge(*, noise: float = 0.0, seed: int = 0) -> ProcessJudge:
    """The toy worlds' process judge; each label is flipped with probability `noise` (E.6: some label noise)."""

    def judge(record: dict, state: str, action: str) -> float:
        kind, content = parse_action(action)
        good = STEP_JUDGES[record["task"]](state, kind, content)  # the world, not its gold
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


def overlap(labelled: list[dict]) -> dict:
    """How far process filtering differs from outcome filtering: of the trajectories the process filter keeps,
    how many the outcome judge fails (kept by `process`, not by `outcome`). With a gold-aware process judge this
    is ~0 and the paper's process-vs-outcome comparison is empty."""
    kept = [t for t in labelled if keep(t, "process")]
    wrong = sum(not keep(t, "outcome") for t in kept)
    return {"process_kept": len(kept), "process_kept_outcome_no": wrong,
            "fraction": wrong / len(kept) if kept else 0.0}

