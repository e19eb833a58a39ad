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
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

MAX_ANSWER_CHARS = 1000  # longer answers: string equality only
MAX_NUMBER_CHARS = 400  # longer digit strings are not parsed as numbers
MAX_SYMBOLIC_CHARS = 300  # longer answers never reach sympy
MAX_DEPTH = 12  # bracket nesting; deeper answers: string equality only (no recursion, no parser stack blowups)
MAX_SET_ELEMENTS = 16  # unordered matching is quadratic in this
DEFAULT_TIMEOUT = 2.0  # seconds of symbolic work per compare() call
HARD_GRACE = 1.0  # extra seconds before a worker stuck in C code is killed
STARTUP_TIMEOUT = 60.0  # importing sympy + math-verify in a fresh worker (slow on a loaded machine)
WORKER_MEMORY_BYTES = 2 << 30  # address-space cap of a symbolic worker


class Verdict(NamedTuple):
    """Result of `compare`: whether the answers are equivalent and which step decided it."""

    equal: bool
    path: str  # "guard" | "number" | "tuple" | "string" | "symbolic" | "timeout"


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
    equal = _POOL.run(pred, gold, timeout)
    cache, value = (_TIMED_OUT, timeout) if equal is None else (_CACHE, equal)
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return equal


def _read_line(fd: int, buf: bytearray, deadline: float) -> bytes | None:
    """Next line from a pipe, or None once `deadline` (monotonic) passes; EOFError if the other end is gone."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while (nl := buf.find(b"\n")) < 0:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(max(1, int(left * 1000))):
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError("symbolic worker closed its pipe")
        buf += chunk
    line = bytes(buf[:nl])
    del buf[: nl + 1]
    return line


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = (
    f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); from reasonrl.tasks.verify import _worker_main; _worker_main()"
)


class _Worker:
    """One symbolic worker subprocess speaking JSON lines: {pred, gold, soft} -> {equal: bool | null}."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.buf = bytearray()
        try:
            ready = _read_line(self.proc.stdout.fileno(), self.buf, time.monotonic() + STARTUP_TIMEOUT)
        except EOFError:
            ready = None
        if ready != b"ready":
            self.kill()
            raise RuntimeError(
                "symbolic answer-check worker did not start; check that `python -c 'import math_verify'` works"
            )

    def check(self, pred: str, gold: str, soft: float) -> bool | None:
        """Send one comparison; None if the worker reports a soft timeout. TimeoutError/EOFError/OSError: worker bad."""
        request = json.dumps({"pred": pred, "gold": gold, "soft": soft}) + "\n"
        self.proc.stdin.write(request.encode())
        self.proc.stdin.flush()
        line = _read_line(self.proc.stdout.fileno(), self.buf, time.monotonic() + soft + HARD_GRACE)
        if line is None:
            raise TimeoutError("symbolic worker exceeded its hard limit")
        return json.loads(line)["equal"]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()


class _WorkerPool:
    """Idle workers of this process; a busy caller (thread) that finds none starts its own."""

    max_idle = 4

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []

    def run(self, pred: str, gold: str, timeout: float) -> bool | None:
        with self.lock:
            worker = self.idle.pop() if self.idle else None
        worker = worker or _Worker()
        try:
            equal = worker.check(pred, gold, timeout)
        except (TimeoutError, EOFError, OSError, ValueError, KeyError):
            worker.kill()  # stuck in C code, crashed or garbled: never reuse it
            return None
        except BaseException:
            worker.kill()  # e.g. KeyboardInterrupt mid-request: its answer would be read by the next caller
            raise
        self._release(worker)
        return equal

    def _release(self, worker: _Worker) -> None:
        with self.lock:
            if len(self.idle) < self.max_idle:
                self.idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for worker in idle:
            worker.kill()


_POOL = _WorkerPool()
_INHERITED: list[_WorkerPool] = []  # a forked child must not talk to (or reap) its parent's workers


def _fresh_pool_after_fork() -> None:
    global _POOL
    _INHERITED.append(_POOL)
    _POOL = _WorkerPool()


os.register_at_fork(after_in_child=_fresh_pool_after_fork)
atexit.register(lambda: _POOL.close())


# ------------------------------------------------------------------------------------------------- inside the worker


class _SoftTimeout(BaseException):
    """Raised by SIGALRM inside the worker; a BaseException so math-verify's `except Exception` cannot swallow it."""


_ARMED = False


def _on_alarm(signum: int, frame: object) -> None:
    if _ARMED:
        raise _SoftTimeout


def _worker_check(pred: str, gold: str, soft: float) -> bool | None:
    """math-verify comparison under a SIGALRM limit (this runs on the worker's main thread)."""
    from math_verify import LatexExtractionConfig, parse
    from math_verify import verify as mv_verify

    latex_only = [LatexExtractionConfig()]  # never ExprExtractionConfig: it runs sympy's parse_expr, i.e. eval()

    global _ARMED
    _ARMED = True
    try:
        signal.setitimer(signal.ITIMER_REAL, max(soft, 1e-3))
        g = parse("\\boxed{" + gold + "}", extraction_config=latex_only, parsing_timeout=None)
        p = parse("\\boxed{" + pred + "}", extraction_config=latex_only, parsing_timeout=None)
        return bool(g) and bool(p) and bool(mv_verify(g, p, timeout_seconds=None))
    except _SoftTimeout:
        return None
    except Exception:  # sympy raising on odd input (RecursionError, MemoryError, ...) means "not shown equal"
        return False
    finally:
        _ARMED = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def _limit_memory() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = WORKER_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(hard, WORKER_MEMORY_BYTES)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _worker_main() -> None:
    """Serve comparisons on stdin/stdout until the parent closes the pipe or dies."""
    import logging

    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; we exit when it goes away
    signal.signal(signal.SIGALRM, _on_alarm)
    _limit_memory()
    out = os.fdopen(os.dup(1), "wb")  # the protocol pipe; stray prints (Python or C) go to stderr = /dev/null
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import math_verify  # noqa: F401  (import once, before saying ready)

    parent, buf = os.getppid(), bytearray()
    out.write(b"ready\n")
    out.flush()
    while True:
        try:
            line = _read_line(0, buf, time.monotonic() + 1.0)
        except EOFError:
            return
        if line is None:
            if os.getppid() != parent:
                return
            continue
        req = json.loads(line)
        out.write((json.dumps({"equal": _worker_check(req["pred"], req["gold"], req["soft"])}) + "\n").encode())
        out.flush()
