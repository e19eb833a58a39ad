"""Final-answer extraction, normalisation, exact number parsing and the guards in front of sympy.

Pure string work with no eval/exec of model output; `reasonrl.tasks.verify` puts these steps together.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_NUMBER_CHARS = 400  # longer digit strings are not parsed as numbers
MAX_SYMBOLIC_CHARS = 300  # longer answers never reach sympy
MAX_DEPTH = 12  # bracket nesting; deeper answers: string equality only (no recursion, no parser stack blowups)


# ---------------------------------------------------------------------------------------------------------- extraction


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` in `text`, with nested braces balanced; None if there is none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def _clean_tail(line: str) -> str | None:
    """The answer written on the rest of a line: strip markdown bold, `$`, a final period; None if empty."""
    answer = line.split("\n", 1)[0].strip(" \t*$").rstrip(".").strip(" \t*$")
    return answer or None


_ANSWER_IS = re.compile(r"answer is\s*:?", re.IGNORECASE)


def extract_answer(text: str) -> str | None:
    """Final answer in a response: the last `\\boxed{}`, else the last `#### x`, else the last `The answer is x`."""
    boxed = extract_boxed(text)
    if boxed:
        return boxed
    hashes = text.rfind("####")
    if hashes >= 0 and (answer := _clean_tail(text[hashes + 4 :])):
        return answer
    ends = [m.end() for m in _ANSWER_IS.finditer(text)]
    return _clean_tail(text[ends[-1] :]) if ends else None


# ------------------------------------------------------------------------------------------------------- normalisation

_UNICODE = str.maketrans(
    {"\u2212": "-", "\u2013": "-", "\u03c0": "\\pi ", "\u221e": "\\infty ", "\u221a": "\\sqrt", "\u00d7": "\\times ",
     "\u00b7": "\\cdot ", "\u00f7": "/", "\u00b0": "", "\u2264": "\\le ", "\u2265": "\\ge "}
)  # fmt: skip
_PLAIN = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:/[0-9]+)?", re.ASCII)
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]")  # `\,` etc., but not the `\\` of a matrix row break
_DROP = ("\\$", "$", "^\\circ", "^{\\circ}", "\\circ", "\\displaystyle")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_TEXT_ONLY = re.compile(r"\\(?:text|textbf|textrm|mbox|mathrm|mathbf|operatorname)\{([^{}]*)\}")
_UNIT_TAIL = re.compile(r"\\(?:text|mbox|mathrm)\{[^{}]*\}(?:\^\{?[23]\}?)?$")
_SPACE = re.compile(r"\s+")
_WORD_UNIT = re.compile(r"([-+]?(?:[0-9][0-9.,/]*|\.[0-9]+)) (?!pi\b)[A-Za-z]{2,}(?: [A-Za-z]+)*")  # "18 dollars"
_LOOSE_SPACE = re.compile(r"(?<![A-Za-z]) | (?![A-Za-z])")  # keep only spaces between letters (`\cot x`)
_LHS = re.compile(r"[A-Za-z](?:_[0-9A-Za-z])?(?:=|\\in(?![A-Za-z]))")
_CHOICE = re.compile(r"\(([A-Ea-e])\)")
_BRACED_SUB = re.compile(r"_\{([0-9A-Za-z]+)\}")


def normalize_answer(answer: str) -> str:
    """Canonical spelling of an answer: no `$`, spacing macros, `\\left`, degree signs, unit text or `x =` prefix."""
    s = answer.strip()
    if _PLAIN.fullmatch(s):  # the common RL case ("18", "-7.0", "3/4") needs none of the rewriting below
        return s
    if s.startswith("\\boxed{") and _group_end(s, len("\\boxed")) == len(s):
        s = s[len("\\boxed{") : -1].strip()
    s = s.translate(_UNICODE)
    s = _SPACING.sub("", s)
    for junk in _DROP:
        s = s.replace(junk, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\%", "%")
    s = _LEFT_RIGHT.sub("", s)
    s = _SPACE.sub(" ", s).strip().rstrip(".").strip()
    if m := _TEXT_ONLY.fullmatch(s):
        s = m.group(1).strip()
    elif (m := _UNIT_TAIL.search(s)) and m.start() > 0:
        s = s[: m.start()]
    if m := _WORD_UNIT.fullmatch(s):
        s = m.group(1)
    s = _LOOSE_SPACE.sub("", s)
    if (m := _LHS.match(s)) and "=" not in s[m.end() :]:
        s = s[m.end() :]
    if m := _CHOICE.fullmatch(s):
        s = m.group(1)
    return _BRACED_SUB.sub(r"_\1", s)


# ------------------------------------------------------------------------------------------------------------- numbers

_N = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+"
_SN = rf"[-+]?(?:{_N})"
_INT_RE = re.compile(r"[-+]?[0-9]+", re.ASCII)
_DEC_RE = re.compile(rf"({_SN})(?:[eE]([-+]?[0-9]{{1,3}}))?", re.ASCII)
_SLASH_RE = re.compile(rf"({_SN})/({_SN})", re.ASCII)
_FRAC_RE = re.compile(rf"([-+]?)([0-9]+)?\\frac(?:\{{({_SN})\}}|([0-9]))(?:\{{({_SN})\}}|([0-9]))", re.ASCII)


def _decimal(text: str) -> tuple[int, int]:
    """(numerator, denominator) of a signed, comma-grouped decimal matched by `_SN`; ints only, no Fraction parsing."""
    whole, _, frac = text.replace(",", "").partition(".")
    sign = -1 if whole.startswith("-") else 1
    digits = whole.lstrip("+-") + frac
    return sign * int(digits or "0"), 10 ** len(frac)


def _ratio(num: tuple[int, int], den: tuple[int, int]) -> Fraction | None:
    """(a/b) / (c/d) as a Fraction; None when dividing by zero."""
    return Fraction(num[0] * den[1], num[1] * den[0]) if den[0] else None


def _plain_number(s: str) -> Fraction | None:
    """Exact value of an integer, decimal, `a/b`, `\\frac{a}{b}` or mixed number; None if `s` is not one of those."""
    if _INT_RE.fullmatch(s):
        return Fraction(int(s))
    if m := _DEC_RE.fullmatch(s):
        num, den = _decimal(m.group(1))
        exponent = int(m.group(2) or 0)
        return Fraction(num * 10**exponent, den) if exponent >= 0 else Fraction(num, den * 10**-exponent)
    if m := _SLASH_RE.fullmatch(s):
        return _ratio(_decimal(m.group(1)), _decimal(m.group(2)))
    if m := _FRAC_RE.fullmatch(s):
        value = _ratio(_decimal(m.group(3) or m.group(4)), _decimal(m.group(5) or m.group(6)))
        if value is None or (m.group(2) and value < 0):  # mixed numbers: positive parts only
            return None
        value += int(m.group(2) or 0)
        return -value if m.group(1) == "-" else value
    return None


def parse_number(answer: str) -> tuple[Fraction, ...] | None:
    """Exact candidate values of a plain numeric answer (normalised); `50%` -> (1/2, 50); None if not plain."""
    if len(answer) > MAX_NUMBER_CHARS:
        return None
    if answer.endswith("%"):
        value = _plain_number(answer[:-1])
        return None if value is None else (value / 100, value)
    value = _plain_number(answer)
    return None if value is None else (value,)


# --------------------------------------------------------------------------------------------------------- collections

_OPENERS = "([{"
_CLOSERS = ")]}"


_BRACKETS = re.compile(r"[^()\[\]{}]+")


def _max_depth(s: str) -> int:
    """Deepest bracket nesting in `s` (all of ( [ { counted alike)."""
    depth = deepest = 0
    for c in _BRACKETS.sub("", s):
        if c in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif c in _CLOSERS:
            depth -= 1
    return deepest


def _split_top(inner: str) -> list[str] | None:
    """`inner` split on commas outside brackets; None if a bracket closes that was not opened inside."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c in _OPENERS:
            depth += 1
        elif c in _CLOSERS:
            depth -= 1
            if depth < 0:
                return None
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


def split_collection(answer: str) -> tuple[str, list[str]] | None:
    """(kind, elements) of a normalised tuple/interval/set/list answer; kind is the bracket pair, "" for a bare list."""
    if answer.startswith("\\{") and answer.endswith("\\}"):
        kind, inner = "{}", answer[2:-2]
    elif len(answer) >= 2 and answer[0] in "([" and answer[-1] in ")]":
        kind, inner = answer[0] + answer[-1], answer[1:-1]
    else:
        kind, inner = "", answer
    parts = _split_top(inner)
    if parts is None or len(parts) < 2 or any(not p for p in parts):
        return None
    return kind, parts


# -------------------------------------------------------------------------------------------------------------- guards

_POW = re.compile(r"\^|\*\*")
_BIG_DIGITS = re.compile(r"[0-9]{5,}")
_BIG_FACTORIAL = re.compile(r"[0-9]{4,}\s*!")  # (10^7)! and the like are left to the time limit
_EXPONENT_TOKEN = re.compile(r"\\[A-Za-z]+|[0-9.]+|.", re.DOTALL)


def _group_end(s: str, i: int) -> int:
    """Index after the bracket group that opens at s[i] (or len(s) if unbalanced)."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] in _OPENERS:
            depth += 1
        elif s[j] in _CLOSERS:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(s)


def _exponent_end(s: str, i: int) -> int:
    """Index after the exponent that starts at s[i] (a group, a command, a number or one character)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return i
    if s[i] in _OPENERS:
        return _group_end(s, i)
    return _EXPONENT_TOKEN.match(s, i).end()


def _powers_are_small(s: str) -> bool:
    """No power towers (`9^9^9`, `9^{9^9}`, `9**9**9`) and no exponent with a 5+ digit number."""
    for m in _POW.finditer(s):
        end = _exponent_end(s, m.end())
        exponent = s[m.end() : end]
        if _POW.search(exponent) or _BIG_DIGITS.search(exponent) or _POW.match(s[end:].lstrip()):
            return False
    return True


def symbolic_allowed(answer: str) -> bool:
    """Cheap pre-checks before a normalised answer may reach sympy."""
    return (
        0 < len(answer) <= MAX_SYMBOLIC_CHARS
        and answer.isascii()
        and answer.isprintable()
        and answer.count("{") == answer.count("}")
        and _max_depth(answer) <= MAX_DEPTH
        and _powers_are_small(answer)
        and not _BIG_FACTORIAL.search(answer)
    )
