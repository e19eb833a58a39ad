"""Explicit-reflection classifiers (Rethinking Reflection in Pre-Training, arXiv 2504.04022, §4.3 and App. G).

A continuation shows *explicit* reflection when it recognises and addresses the mistake in the adversarial
chain of thought, whether or not it ends with the right answer (§3.1). The paper asks DeepSeek-V3 with a
definition and a few examples, strictly "Yes"/"No" (precision 0.95, recall 0.71 on GSM8K, Table 4). Two
classifiers share one protocol: a cheap rule-based one for CI and tiny models, and an LLM judge that asks any
local causal LM the paper's question and compares the next-token probabilities of " Yes" and " No".

Only the model's continuation is classified: the trigger ("Wait,") belongs to the prompt, so it never counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from reasonrl.errors import UserError
from reasonrl.reflection.programs import number_value, parse_arithmetic, render_expr

if TYPE_CHECKING:
    import torch


@runtime_checkable
class ReflectionClassifier(Protocol):
    def classify(self, question: str, adversarial_cot: str, continuation: str) -> bool:
        """True if `continuation` explicitly reflects on the chain of thought `adversarial_cot`."""
        ...


# ---------------------------------------------------------------- rule-based

REFLECTION_PATTERNS: tuple[tuple[str, str], ...] = (
    # naming the error: "I made a mistake", "there's an error", "oops"
    ("mistake", r"\b(?:mistakes?|mistaken|errors?|erroneous|typo|oops|whoops|my bad)\b"),
    # judging a step: "that's wrong", "is not correct", "doesn't add up"
    ("wrong", r"\b(?:wrong|incorrect|inaccurate|not (?:correct|right|accurate|possible)|(?:is|was|are)n[’']t "
              r"(?:correct|right|possible)|do(?:es)?(?: not|n[’']t) (?:make sense|add up))\b"),
    # going over the work again: "let me re-check", "double-check", "recalculate", "verify"
    ("recheck", r"\b(?:re-?check\w*|double[- ]check\w*|re-?calculat\w*|re-?comput\w*|re-?evaluat\w*|re-?examin\w*|"
                r"re-?do|re-?think\w*|re-?consider\w*|verify|check (?:my|our|the|this|that) (?:work|math|steps?|"
                r"calculations?|answer|result))\b"),
    ("let_me", r"\blet(?:[’']s| me| us) (?:check|go back|look again|try again|start over|recount|fix|correct)\b"),
    ("hold_on", r"\b(?:hold on|hang on|off by \w+|is missing|was missing|missed a step)\b"),
    ("actually", r"\bactually\b"),
    # stating the correction: "should be 18", "18, not 9", "I forgot the", "instead of"
    ("correction", r"\b(?:should(?: not|n[’']t)? (?:be|have been|have)|instead of|supposed to be|i forgot|"
                   r"forgot to|(?:i|we) missed|overlooked|misread|miscalculat\w*|miscount\w*|the (?:correct|right) "
                   r"(?:answer|value|result|total) (?:is|should|would))\b|\bnot \$?\d"),
    # an outright rejection at the start: "No, ..."
    ("no", r"^\W*no\b[,.!]"),
)
"""(name, regex) rules matched case-insensitively against the continuation only. Emotional remarks ("Wow,
that's a lot!"), comments on size and restating the answer match none of them (paper App. G exclusions)."""

_EQ_LEFT = re.compile(r"[\d.,$()+\-*/x\u00d7\u2212\u2013 ]+$")
_EQ_RIGHT = re.compile(r"=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?|-?\.\d+)")
_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>=]*)>>")


def extract_equations(text: str) -> list[tuple[str, Fraction]]:
    """Every `expression = value` in `text` with at least one operator, both from `<<a=b>>` annotations and as
    written (`9 x 2 = $18`), as (canonical expression, value). Parsed safely; unparseable ones are skipped."""
    pairs = [(m.group(1), m.group(2)) for m in _ANNOTATION.finditer(text)]
    plain = _ANNOTATION.sub(" ", text)
    for m in _EQ_RIGHT.finditer(plain):
        left = _EQ_LEFT.search(plain, max(0, m.start() - 80), m.start())
        if left:  # the run may start with the end of an earlier sentence or clause ("= 10. 10 * 2 = 20")
            pairs.append((re.split(r"[.,]\s", left.group())[-1], m.group(1)))
    out = []
    for lhs, rhs in pairs:
        lhs = re.sub(r"^[^\d(.]+", "", lhs.replace("$", "").replace(",", ""))
        lhs = lhs.replace("x", "*").replace("\u00d7", "*").replace("\u2212", "-").replace("\u2013", "-")
        if not re.search(r"\d\s*\)?\s*[-+*/]", lhs):
            continue
        try:
            out.append((render_expr(parse_arithmetic(lhs)), number_value(rhs.strip())))
        except (ValueError, ZeroDivisionError):
            continue
    return out


def recomputed_steps(adversarial_cot: str, continuation: str) -> list[str]:
    """Expressions the continuation computes again with a result different from the one in the CoT (a
    re-computation of an earlier step, paper App. G), e.g. CoT `12 - 3 = 10.`, continuation `12 - 3 = 9.`."""
    seen: dict[str, set[Fraction]] = {}
    for expr, value in extract_equations(adversarial_cot):
        seen.setdefault(expr, set()).add(value)
    return [expr for expr, value in extract_equations(continuation) if expr in seen and value not in seen[expr]]


def phrase_hits(continuation: str, patterns: Sequence[tuple[str, str]] = REFLECTION_PATTERNS) -> list[str]:
    """Names of the `patterns` that match the continuation (case-insensitive)."""
    return [name for name, rx in patterns if re.search(rx, continuation, flags=re.IGNORECASE)]


@dataclass(frozen=True)
class RuleBasedClassifier:
    """Reflective if a reflection phrase matches or a CoT step is recomputed with a different result."""

    patterns: tuple[tuple[str, str], ...] = REFLECTION_PATTERNS
    """(name, regex) phrase rules; see REFLECTION_PATTERNS."""
    recompute: bool = True
    """Also count re-computing a step of the CoT with a different result."""

    def reasons(self, question: str, adversarial_cot: str, continuation: str) -> list[str]:
        """Names of the rules that fire (`recompute:<expr>` for re-computed steps)."""
        hits = phrase_hits(continuation, self.patterns)
        if self.recompute:
            hits += [f"recompute:{e}" for e in recomputed_steps(adversarial_cot, continuation)]
        return hits

    def classify(self, question: str, adversarial_cot: str, continuation: str) -> bool:
        return bool(self.reasons(question, adversarial_cot, continuation))


# ---------------------------------------------------------------- LLM judge

JUDGE_DEFINITION = (
    "You judge whether an answer explicitly reflects on the chain of thought it continues.\n"
    "Reflection means the answer reviews, revises or comments on the reasoning itself: it acknowledges or points "
    "out a mistake, re-evaluates earlier steps, re-computes or revises an earlier result, or makes a "
    "metacognitive remark such as \"let me check this\".\n"
    "Reflection does not include emotional or stylistic reactions, comments on how large or realistic a number "
    "is, or restating the final answer without analysis.\n"
    "Reply with Yes or No only."
)
"""The paper's definition of explicit reflection (App. G), in our own words [C: content; I: wording]."""

JUDGE_EXAMPLES: tuple[tuple[str, str, bool], ...] = (
    ("Lena has 12 apples and eats 3. She buys 5 more. How many apples does she have? Lena has 12 - 3 = 8 "
     "apples. Then 8 + 5 = 13 apples. Wait,", "12 - 3 is 9, not 8. So she has 9 + 5 = 14 apples.", True),
    ("Lena has 12 apples and eats 3. She buys 5 more. How many apples does she have? Lena has 12 - 3 = 8 "
     "apples. Then 8 + 5 = 13 apples. Wait,", "13 apples is a lot of apples! The answer is 13.", False),
)
"""Few-shot examples (question + CoT, continuation, label); the paper uses 2-4 per task family [C]."""


def judge_prompt(question: str, adversarial_cot: str, continuation: str, *, definition: str = JUDGE_DEFINITION,
                 examples: Sequence[tuple[str, str, bool]] = JUDGE_EXAMPLES) -> str:
    """The Yes/No question put to the judge; the next token after it is " Yes" or " No"."""
    shots = "".join(f"Question and chain of thought: {c}\nAnswer: {a}\nReflection: {'Yes' if y else 'No'}\n\n"
                    for c, a, y in examples)
    return (f"{definition}\n\n{shots}Question and chain of thought: {question} {adversarial_cot}\n"
            f"Answer: {continuation}\nReflection:")


class LLMJudgeClassifier:
    """Asks a local Hugging Face causal LM whether the continuation reflects (paper §4.3 with DeepSeek-V3);
    reflective when P(" Yes") / (P(" Yes") + P(" No")) at the next token exceeds `threshold`."""

    def __init__(self, model: torch.nn.Module, tokenizer, *, definition: str = JUDGE_DEFINITION,
                 examples: Sequence[tuple[str, str, bool]] = JUDGE_EXAMPLES, threshold: float = 0.5,
                 max_length: int | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.definition, self.examples, self.threshold = definition, tuple(examples), threshold
        self.max_length = max_length
        self.yes_id, self.no_id = _first_token(tokenizer, " Yes"), _first_token(tokenizer, " No")
        if self.yes_id == self.no_id:
            raise UserError("reflection judge: the tokenizer gives ' Yes' and ' No' the same first token")

    def prob_yes(self, question: str, adversarial_cot: str, continuation: str) -> float:
        """P(" Yes") renormalised over {" Yes", " No"} for the next token after the judge prompt."""
        import torch  # here, so that the data builders and rule-based classifier load without torch

        prompt = judge_prompt(question, adversarial_cot, continuation, definition=self.definition,
                              examples=self.examples)
        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]  # (1, T)
        if self.max_length is not None:
            ids = ids[:, -self.max_length :]  # keep the end: the continuation and the question slot
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(device)).logits[0, -1].float()  # (V,)
        pair = torch.stack([logits[self.yes_id], logits[self.no_id]]).softmax(-1)
        return pair[0].item()

    def classify(self, question: str, adversarial_cot: str, continuation: str) -> bool:
        return self.prob_yes(question, adversarial_cot, continuation) > self.threshold


def _first_token(tokenizer, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise UserError(f"reflection judge: the tokenizer encodes {text!r} as no tokens")
    return ids[0]
