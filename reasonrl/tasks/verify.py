"""Answer extraction and equivalence checking (safe: no eval/exec of model output).

`compare(pred, gold)` tries, in order (first decisive step wins):
  1. guards: an answer over `MAX_ANSWER_CHARS` or nested deeper than `MAX_DEPTH` brackets is compared as a string only;
  2. "number": both sides plain numbers (ints, decimals, 1,234, a/b, \\frac{a}{b}, mixed 1\\frac{4}{5}, 1e3, 50%)
     -> exact `Fraction` equality, pure Python, a few microseconds; a percentage matches v/100 or v;
  3. "tuple": both sides comma collections -> element-wise (ordered tuples / intervals, bracket kinds must match)
     or as multisets (bare lists, \\{sets\\}), each element through these same steps;
  4. "string": equal after normalisation (case-insensitive for plain words);
  5. "guard": refuse the symbolic step for non-ASCII, unbalanced braces, power towers or 5+ digit exponents, big
     factorials, inputs over `MAX_SYMBOLIC_CHARS`;
  6. "symbolic": math-verify (sympy) in a persistent worker *subprocess* (never multiprocessing, so it also works from
     threads and daemonic pool workers). Time limit: a soft SIGALRM limit inside the worker (its own main thread) ends
     slow Python code and keeps the worker; a hard limit in the caller (select on the pipe) kills a worker stuck in C
     code (big-int arithmetic) and the next call starts a fresh one. Timed out -> path "timeout", not equal.
     `timeout` bounds the symbolic work of one compare() (tuple elements share it); the one-time start of a worker
     (importing sympy, ~1 s, at most `STARTUP_TIMEOUT`) is not counted. Results are memoised per (pred, gold),
     time-outs too, so a repeated hostile answer costs its limit once.

The string steps (extraction, normalisation, numbers, guards) live in `reasonrl.tasks.answers`, the worker
pool of step 6 in `reasonrl.tasks.verify_pool`; this module puts them together and is the public entry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

from reasonrl.tasks import verify_pool
from reasonrl.tasks.answers import (
    _INT_RE,
    MAX_DEPTH,
    MAX_NUMBER_CHARS,
    MAX_SYMBOLIC_CHARS,
    _max_depth,
    extract_answer,
    extract_boxed,
    normalize_answer,
    parse_number,
    split_collection,
    symbolic_allowed,
)

__all__ = [
    "DEFAULT_TIMEOUT", "MAX_ANSWER_CHARS", "MAX_DEPTH", "MAX_NUMBER_CHARS", "MAX_SET_ELEMENTS", "MAX_SYMBOLIC_CHARS",
    "Verdict", "batch_verify", "compare", "extract_answer", "extract_boxed", "is_equivalent", "normalize_answer",
    "parse_number", "split_collection", "symbolic_allowed", "symbolic_equal", "verify",
]

MAX_ANSWER_CHARS = 1000  # longer answers: string equality only
MAX_SET_ELEMENTS = 16  # unordered matching is quadratic in this
DEFAULT_TIMEOUT = 2.0  # seconds of symbolic work per compare() call


class Verdict(NamedTuple):
    """Result of `compare`: whether the answers are equivalent and which step decided it."""

    equal: bool
    path: str  # "guard" | "number" | "tuple" | "string" | "symbolic" | "timeout"


# --------------------------------------------------------------------------------------------------------- collections


def _compare_collections(p: str, g: str, deadline: float) -> bool | None:
    """Element-wise verdict for two collections; None when they are not both collections of comparable kinds."""
    if "\\pm" in p or "\\pm" in g or "\\mp" in p or "\\mp" in g:
        return None  # `1\pm\sqrt{5}` stands for two elements: leave it to sympy
    pc, gc = split_collection(p), split_collection(g)
    if pc is None or gc is None:
        return None
    (pk, pe), (gk, ge) = pc, gc
    unordered = {"", "{}"}
    if pk in unordered and gk in unordered:
        if len(pe) > MAX_SET_ELEMENTS or len(ge) > MAX_SET_ELEMENTS:
            return None
        return len(pe) == len(ge) and _match_unordered(pe, ge, deadline)
    if pk != gk:
        return None
    return len(pe) == len(ge) and all(_compare_normalized(a, b, deadline).equal for a, b in zip(pe, ge, strict=True))


def _match_unordered(pe: list[str], ge: list[str], deadline: float) -> bool:
    """Greedy multiset matching (equivalence is transitive enough for answers)."""
    left = list(ge)
    for a in pe:
        hit = next((i for i, b in enumerate(left) if _compare_normalized(a, b, deadline).equal), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


# ------------------------------------------------------------------------------------------------------------- compare


def _same_text(p: str, g: str) -> bool:
    """Normalised strings equal; plain words compare case-insensitively (`East` == `\\text{east}`)."""
    if p == g:
        return True
    return p.replace(" ", "").isalpha() and p.lower() == g.lower()


def _compare_normalized(p: str, g: str, deadline: float) -> Verdict:
    """Steps 2-6 of the module docstring on normalised answers; symbolic work stops at `deadline` (monotonic)."""
    pn, gn = parse_number(p), parse_number(g)
    if pn is not None and gn is not None:
        return Verdict(any(a == b for a in pn for b in gn), "number")
    if (pn is not None and not _could_be_number(g)) or (gn is not None and not _could_be_number(p)):
        return Verdict(False, "number")
    collections = _compare_collections(p, g, deadline)
    if collections is not None:
        return Verdict(collections, "tuple")
    if _same_text(p, g):
        return Verdict(True, "string")
    if not (symbolic_allowed(p) and symbolic_allowed(g)):
        return Verdict(False, "guard")
    equal = symbolic_equal(p, g, timeout=deadline - time.monotonic())
    return Verdict(False, "timeout") if equal is None else Verdict(equal, "symbolic")


def _could_be_number(s: str) -> bool:
    """Only text with a digit or a LaTeX command can denote a number (`abc` cannot; `\\sqrt{4}` can)."""
    return any(c.isdigit() for c in s) or "\\" in s


def compare(pred: str, gold: str, *, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    """Whether answer `pred` is equivalent to `gold`, and which step decided; symbolic work capped at `timeout` s."""
    if not isinstance(pred, str) or not isinstance(gold, str):
        raise TypeError(f"answers must be str, got {type(pred).__name__} and {type(gold).__name__}")
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return Verdict(pred.strip() == gold.strip(), "guard")
    if len(pred) <= MAX_NUMBER_CHARS and _INT_RE.fullmatch(pred) and _INT_RE.fullmatch(gold):  # hot path of RL rewards
        return Verdict(int(pred) == int(gold), "number")
    p, g = normalize_answer(pred), normalize_answer(gold)
    if not p or not g:
        return Verdict(False, "guard")
    if _max_depth(p) > MAX_DEPTH or _max_depth(g) > MAX_DEPTH:
        return Verdict(p == g, "guard")
    return _compare_normalized(p, g, time.monotonic() + timeout)


def is_equivalent(pred: str, gold: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """True if answer `pred` means the same as `gold` (see the module docstring for what counts)."""
    return compare(pred, gold, timeout=timeout).equal


def verify(response_text: str, gold: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Extract the final answer from a response and compare it with `gold`; no answer -> False."""
    answer = extract_answer(response_text)
    return answer is not None and is_equivalent(answer, gold, timeout=timeout)


def batch_verify(responses: Sequence[str], golds: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> list[bool]:
    """`verify` over aligned lists; identical (response, gold) pairs are checked once."""
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} golds")
    seen: dict[tuple[str, str], bool] = {}
    out = []
    for response, gold in zip(responses, golds, strict=True):
        key = (response, gold)
        if key not in seen:
            seen[key] = verify(response, gold, timeout=timeout)
        out.append(seen[key])
    return out


# ------------------------------------------------------------------------------------------------------ symbolic step

_CACHE: dict[tuple[str, str], bool] = {}
_TIMED_OUT: dict[tuple[str, str], float] = {}  # the longest limit a pair has already run out of
_CACHE_SIZE = 16384


def symbolic_equal(pred: str, gold: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool | None:
    """math-verify equivalence of two guarded, normalised answers in a worker process; None if it ran out of time."""
    key = (pred, gold)
    cached = _CACHE.get(key)  # get, not `in` + [], so a concurrent clear() cannot raise KeyError
    if cached is not None:
        return cached
    if not (symbolic_allowed(pred) and symbolic_allowed(gold)):
        return False
    if timeout < 1.25 * _TIMED_OUT.get(key, 0.0):  # ran out of (nearly) this much time before: do not wait again
        return None
    equal = verify_pool.check(pred, gold, timeout)
    cache, value = (_TIMED_OUT, timeout) if equal is None else (_CACHE, equal)
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return equal
