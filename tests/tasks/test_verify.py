"""Answer extraction and equivalence: a hand table, hostile inputs, time limits from threads and pool workers, fuzz."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasonrl.tasks import verify as V
from reasonrl.tasks import verify_pool as VP
from reasonrl.tasks.verify import (
    batch_verify,
    compare,
    extract_answer,
    extract_boxed,
    is_equivalent,
    normalize_answer,
    parse_number,
    verify,
)

# ------------------------------------------------------------------------------------------------------ extraction


def test_extract_boxed_keeps_its_behaviour():
    assert extract_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
    assert extract_boxed("\\boxed{ {a}{b} }") == "{a}{b}"
    assert extract_boxed("\\boxed{unclosed {") is None
    assert extract_boxed("no box") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{\\frac{a}{\\sqrt{b}}} and done", "\\frac{a}{\\sqrt{b}}"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("Natalia sold 48+24 = 72 clips.\n#### 72", "72"),
        ("#### 1,234\n", "1,234"),
        ("#### 5 then later\n#### 7", "7"),
        ("Thus, the answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("The final answer is: 42", "42"),
        ("THE ANSWER IS **17**.", "17"),
        ("The answer is 3. Then the answer is 4.\nbye", "4"),
        ("truncated \\boxed{12 \n#### 9", "9"),
        ("I think it is 5", None),
        ("The answer is   \n", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# --------------------------------------------------------------------------------------------------- the hand table

EQUIVALENT = [
    ("18", "18"),
    ("3/4", "0.75"),
    ("-7", "-7.0"),
    ("025", "25"),  # AIME golds keep their leading zero
    ("1,000", "1000"),
    ("1,234,567.5", "1234567.5"),
    ("10,\\!080", "10080"),
    ("11,\\! 111,\\! 111,\\! 100", "11111111100"),
    ("\\$32,\\!348", "32348"),
    ("0.5", "\\frac{1}{2}"),
    ("\\dfrac{17}{50}", "0.34"),
    ("\\tfrac12", "0.5"),
    ("\\frac43", "\\frac{4}{3}"),
    ("\\frac 59", "5/9"),
    ("\\frac9{19}", "9/19"),
    ("-\\frac{35}{9}", "-35/9"),
    ("\\frac{-3}{8}", "-\\frac{3}{8}"),
    ("1\\frac{4}{5}", "9/5"),  # MATH writes mixed numbers this way
    ("137 \\frac{1}{2}", "137.5"),
    ("50%", "0.5"),
    ("50\\%", "50"),
    ("12.5%", "1/8"),
    ("1e3", "1000"),
    ("+5", "5"),
    (".35625", "0.35625"),
    ("$42$", "42"),
    ("42.", "42"),
    ("\u221242", "-42"),  # unicode minus
    ("90^\\circ", "90"),
    ("30^{\\circ}", "30"),
    ("5.4 \\text{ cents}", "5.4"),
    ("864 \\mbox{ inches}^2", "864"),
    ("\\frac{270}7\\text{ degrees}", "270/7"),
    ("x=5", "5"),
    ("x = 5", "x=5"),
    ("\\text{Evelyn}", "Evelyn"),
    ("\\text{east}", "East"),
    ("\\text{(C)}", "C"),
    ("(3, 4]", "(3,4]"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("(-\\infty, 0]", "(-\\infty,0]"),
    ("x \\in [-2,7]", "[-2, 7]"),
    ("(0.5, 3)", "(\\frac12, 3)"),
    ("1,-2", "-2, 1"),  # bare lists are unordered
    ("\\{1, 2\\}", "2,1"),
    ("4210_{5}", "4210_5"),
    ("\\sqrt{4}", "2"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt2}"),
    ("2x+2", "2(x+1)"),
    ("(x-1)(x+1)", "x^2-1"),
    ("3\\sqrt{13}", "\\sqrt{117}"),
    ("-5i+6", "6 - 5i"),
    ("\\pi/6", "\\frac{\\pi}{6}"),
    ("\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", "\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}"),
    ("1+\\sqrt5, 1-\\sqrt5, -2", "\\{1\\pm\\sqrt{5},-2\\}"),  # a set with \pm stands for two elements
    ("\\frac{(2n)!}{n!}", "\\frac{(2n)!}{n! \\cdot 1}"),
    ("\\boxed{ \\frac{1}{2} }", "0.5"),
    ("18 dollars", "18"),
    ("1,000 apples per day", "1000"),
]

NOT_EQUIVALENT = [
    ("18", "19"),
    ("3/4", "0.76"),
    ("-7", "7"),
    ("0.333", "\\frac13"),  # plain numbers compare exactly, no rounding
    ("1,001", "1000"),
    ("50%", "5"),
    ("1e3", "100"),
    ("1\\frac{4}{5}", "4/5"),
    ("(1,2)", "(2,1)"),  # tuples are ordered
    ("(3,4]", "(3,4)"),  # interval ends matter
    ("[1,2]", "(1,2)"),
    ("1,2,3", "1,2"),
    ("1,2,2", "1,1,2"),  # multisets, not sets
    ("\\text{east}", "west"),
    ("A", "B"),
    ("abc", "42"),
    ("", ""),
    ("$$", "$$"),
    ("\\sqrt{5}", "\\sqrt{6}"),
    ("2x+2", "2x+1"),
    ("x", "y"),
    ("\\pi", "3.14"),
    ("\\frac{1}{0}", "0"),
    ("52_8", "42"),
    ("9^{9^{9}}", "1"),
    ("2 pi", "2"),
    ("\\boxed{1}+\\boxed{2}", "2"),
    ("1+\\sqrt5, 1-\\sqrt6, -2", "\\{1\\pm\\sqrt{5},-2\\}"),
]


@pytest.mark.parametrize(("pred", "gold"), EQUIVALENT)
def test_equivalent_pairs(pred, gold):
    assert is_equivalent(pred, gold), compare(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), NOT_EQUIVALENT)
def test_not_equivalent_pairs(pred, gold):
    assert not is_equivalent(pred, gold), compare(pred, gold)


def test_table_is_big_enough():
    assert len(EQUIVALENT) + len(NOT_EQUIVALENT) >= 50


@pytest.mark.parametrize(
    ("pred", "gold", "path"),
    [
        ("18", "18", "number"),
        ("3/4", "0.75", "number"),
        ("-7", "-7.0", "number"),
        ("\\frac{3}{4}", "0.75", "number"),
        ("19", "18", "number"),
        ("banana", "18", "number"),  # no digit, no command: cannot be a number, no sympy
        ("(1, 2]", "(1,2]", "tuple"),
        ("\\text{Navin}", "navin", "string"),
        ("\\sqrt{4}", "2", "symbolic"),
        ("9**9**9", "2", "guard"),
        ("2^{99999}", "2", "guard"),
        ("10000!", "2", "guard"),
        ("\u221a\u2074", "2", "guard"),  # unicode superscript: non-ASCII never reaches sympy
    ],
)
def test_deciding_step(pred, gold, path):
    assert compare(pred, gold).path == path


def test_parse_number_values():
    assert parse_number("1,234.5") == (Fraction(2469, 2),)
    assert parse_number("50%") == (Fraction(1, 2), Fraction(50))
    assert parse_number("-\\frac{3}{4}") == (Fraction(-3, 4),)
    assert parse_number("2.5e-2") == (Fraction(1, 40),)
    assert parse_number("1/0") is None
    assert parse_number("1,23") is None  # not a thousands grouping
    assert parse_number("x") is None


def test_normalize_answer_examples():
    assert normalize_answer("\\left( 3, \\dfrac{\\pi}{2} \\right)") == "(3,\\frac{\\pi}{2})"
    assert normalize_answer("\\cot x") == "\\cot x"  # a space between letters is meaningful
    assert normalize_answer(" $\\$18.90$. ") == "18.90"


def test_verify_and_batch_verify():
    responses = ["... so \\boxed{18}", "#### 1,000", "The answer is 0.75.", "no answer here", "\\boxed{\\sqrt{4}}"]
    golds = ["18", "1000", "3/4", "5", "2"]
    assert batch_verify(responses, golds) == [True, True, True, False, True]
    assert verify("\\boxed{17}", "18") is False
    assert batch_verify(["\\boxed{1}"] * 3, ["1", "2", "1"]) == [True, False, True]
    with pytest.raises(ValueError, match="2 responses but 1 golds"):
        batch_verify(["a", "b"], ["1"])


def test_non_string_input_is_a_type_error():
    with pytest.raises(TypeError):
        compare(18, "18")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------- hostile

NESTED_FRAC = "\\frac{" * 10_000 + "1" + "}{}" * 10_000
HOSTILE = [
    "9**9**9",
    "9^9^9",
    "9^{9^{9}}",
    "10^{10^{8}}",
    "(10^{7})!",
    "\\sum_{i=1}^{999999999} i",
    NESTED_FRAC,
    "(" * 5000 + "1" + ")" * 5000,
    "{" * 20 + "1" + "}" * 20,
    "1" * 1_000_000,
    "x" * 1_000_000,
    "\\frac{}{}",
    "\\frac{",
    "}{",
    "\x00\x01\u202e\ud800\U0001f600",
    "\u0663\u0664",  # Arabic-Indic digits are not numbers here
    "\\begin{pmatrix}",
    "\\\\\\\\",
    "1/0",
    "0^{-1}",
    "\\infty-\\infty",
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda s: repr(s[:20]))
def test_hostile_inputs_return_quickly(hostile):
    start = time.monotonic()
    for gold in ("1", "\\frac{1}{2}", "(1,2)", hostile):
        verdict = compare(hostile, gold, timeout=0.5)
        assert isinstance(verdict.equal, bool)
    assert verify("\\boxed{" + hostile + "}", "1", timeout=0.5) is False
    assert time.monotonic() - start < 30, "a hostile input got past every time limit"


def test_hostile_towers_never_reach_sympy():
    for s in ("9**9**9", "9^9^9", "9^{9^{9}}", "2^{99999}", "10000!", "\\sum_{i=1}^{999999999} i", NESTED_FRAC):
        assert not V.symbolic_allowed(normalize_answer(s)), s


def test_huge_text_extraction_is_linear():
    text = "junk " * 200_000 + "\\boxed{" + NESTED_FRAC + "}"
    assert extract_answer(text) == NESTED_FRAC
    assert extract_answer("The answer is " + "9" * 1_000_000) == "9" * 1_000_000
    assert compare(NESTED_FRAC, NESTED_FRAC).equal  # identical but far too big to parse: string equality
    assert not compare(NESTED_FRAC, "1").equal


def test_python_payloads_are_never_evaluated(tmp_path):
    from sympy.parsing.sympy_parser import parse_expr

    live = tmp_path / "live"
    parse_expr(f"__import__('pathlib').Path({str(live)!r}).touch()", evaluate=False)
    assert live.exists()  # the payload really runs if it ever reaches sympy's parse_expr (which eval()s)
    target = tmp_path / "pwned"
    payloads = [
        f"__import__('pathlib').Path({str(target)!r}).touch()",
        f'__import__("pathlib").Path("{target}").touch()',
        f"(lambda: __import__('pathlib').Path({str(target)!r}).touch())()",
    ]
    for payload in payloads:
        assert not is_equivalent(payload, "1", timeout=5.0)
        assert not verify(f"The answer is \\boxed{{{payload}}}", "None", timeout=5.0)
        VP._POOL.run(payload, "None", 5.0)  # straight to the worker, past every guard
    assert not target.exists()


# ---------------------------------------------------------------------------------------------------- time limits


def test_soft_limit_keeps_the_worker():
    VP._POOL.run("1", "1", 5.0)  # warm one worker
    pids = [w.proc.pid for w in VP._POOL.idle]
    assert VP._POOL.run("\\sin(1)^2+\\cos(1)^2", "1", 1e-4) is None  # parse + simplify take far longer than 0.1 ms
    assert [w.proc.pid for w in VP._POOL.idle] == pids  # same worker, still usable:
    assert VP._POOL.run("\\sin(1)^2+\\cos(1)^2", "1", 10.0) is True


def test_a_pair_that_timed_out_is_not_retried_with_less_time():
    pair = ("(10^{7})!+\\sin(1)", "3")  # sympy works on this for far longer than 0.3 s
    start = time.monotonic()
    assert compare(*pair, timeout=0.3) == (False, "timeout")
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    assert compare(*pair, timeout=0.3) == (False, "timeout")
    assert time.monotonic() - start < 0.3  # remembered: no second wait


def test_hard_limit_kills_a_stuck_worker():
    VP._POOL.run("1", "1", 5.0)
    stuck = VP._POOL.idle[-1].proc
    os.kill(stuck.pid, signal.SIGSTOP)  # a worker that never answers, like one inside a long C call
    start = time.monotonic()
    assert VP._POOL.run("\\sqrt{9}", "3", 0.2) is None
    assert time.monotonic() - start < 0.2 + VP.HARD_GRACE + 2.0
    assert stuck.returncode is not None  # killed and reaped
    assert all(w.proc is not stuck for w in VP._POOL.idle)
    assert VP._POOL.run("\\sqrt{9}", "3", 10.0) is True  # a fresh worker takes over


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_worker_exits_when_its_parent_is_killed():
    code = (
        "import os; from reasonrl.tasks import verify_pool as VP; VP._POOL.run('1', '1', 5.0); "
        "print(VP._POOL.idle[0].proc.pid, flush=True); os.kill(os.getpid(), 9)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    worker = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)


def test_symbolic_from_threads():
    pairs = [("\\sqrt{4}", "2", True), ("2x+2", "2(x+1)", True), ("\\sqrt{5}", "2", False), ("18", "18", True)] * 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda p: is_equivalent(p[0], p[1], timeout=10.0), pairs))
    assert got == [p[2] for p in pairs]


POOL_PAIRS = [("\\sqrt{4}", "2"), ("x^2-1", "(x-1)(x+1)"), ("\\sqrt{5}", "2"), ("3/4", "0.75"), ("9**9**9", "1")]
POOL_EXPECTED = [True, True, False, True, False]


def _in_daemonic_worker(pred: str, gold: str) -> bool:
    assert multiprocessing.current_process().daemon  # such a process may not start multiprocessing children
    return is_equivalent(pred, gold, timeout=10.0)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_symbolic_inside_daemonic_pool_workers(method):
    assert is_equivalent("\\sqrt{9}", "3")  # the parent owns a worker before forking
    parent_pids = [w.proc.pid for w in VP._POOL.idle]
    # a spawned child cannot import this test module (pytest's importlib mode), so it runs the library function
    func = _in_daemonic_worker if method == "fork" else V.is_equivalent
    with multiprocessing.get_context(method).Pool(1) as pool:
        children = multiprocessing.active_children()
        assert children and all(p.daemon for p in children)
        got = pool.starmap_async(func, POOL_PAIRS).get(timeout=300)  # a lost task fails the test instead of hanging
    assert got == POOL_EXPECTED
    assert [w.proc.pid for w in VP._POOL.idle] == parent_pids  # children never touched the parent's worker
    assert VP._POOL.run("\\sqrt{16}", "4", 10.0) is True


def test_worker_is_reset_after_fork():
    assert is_equivalent("\\sqrt{9}", "3")
    before = VP._POOL
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not see the parent's idle workers
        ok = VP._POOL is not before and not VP._POOL.idle
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.waitpid(pid, 0)


# ------------------------------------------------------------------------------------------------------------- fuzz

MATH_TOKENS = list("0123456789+-*/^{}()[],.!%$ =xei") + [
    "\\frac", "\\dfrac", "\\sqrt", "\\pi", "\\infty", "\\boxed{", "\\left(", "\\right)", "\\cdot", "\\\\", "^{",
    "**", "\\text{", "\\!", "####", "The answer is ", "\\begin{pmatrix}", "\\end{pmatrix}", "9^9^9", "\\frac{}{}",
]  # fmt: skip
HOSTILE_TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(MATH_TOKENS), max_size=25).map("".join),
    st.builds(
        lambda tok, n: tok * n, st.sampled_from(["\\frac{", "(", "{", "9^", "\\sqrt{", "1"]), st.integers(1, 3000)
    ),
)


def _check_string(s: str, symbolic_calls: list[tuple[str, str]]) -> None:
    """Every public entry point on one hostile string: no exception, bool results, reflexivity."""
    answer = extract_answer(s)
    assert answer is None or isinstance(answer, str)
    assert compare(s, s).equal == (len(s) > V.MAX_ANSWER_CHARS or bool(normalize_answer(s)))
    for gold in ("42", "(1,2]"):
        assert isinstance(compare(s, gold).equal, bool)
    assert isinstance(verify(s, "42"), bool)
    for pred, gold in symbolic_calls:
        assert V.symbolic_allowed(pred) and V.symbolic_allowed(gold)
    symbolic_calls.clear()


def _fuzz(strings: list[str], monkeypatch) -> None:
    calls: list[tuple[str, str]] = []

    def record(pred: str, gold: str, timeout: float) -> None:  # stands in for the worker: only the guards are checked
        calls.append((pred, gold))
        return None

    monkeypatch.setattr(VP._POOL, "run", record)
    V._CACHE.clear()
    for s in strings:
        _check_string(s, calls)


FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@settings(FUZZ, max_examples=40)
@given(st.lists(HOSTILE_TEXT, min_size=50, max_size=50))
def test_fuzz_2k_hostile_strings_without_sympy(strings):
    """40 examples x 50 strings = 2k strings through every step except the worker (which is recorded instead)."""
    with pytest.MonkeyPatch.context() as mp:
        _fuzz(strings, mp)


@pytest.mark.slow
@settings(FUZZ, max_examples=200)
@given(st.lists(HOSTILE_TEXT, min_size=50, max_size=50))
def test_fuzz_10k_hostile_strings_without_sympy(strings):
    """200 examples x 50 strings = 10k strings, as above."""
    with pytest.MonkeyPatch.context() as mp:
        _fuzz(strings, mp)


@settings(FUZZ, max_examples=30)
@given(st.lists(st.lists(st.sampled_from(MATH_TOKENS), max_size=12).map("".join), min_size=5, max_size=5))
def test_fuzz_with_real_sympy(strings):
    """150 math-looking strings through the real worker: every check ends within its limit."""
    for s in strings:
        start = time.monotonic()
        for gold in ("42", "x+1"):
            assert isinstance(compare(s, gold, timeout=0.5).equal, bool)
        assert time.monotonic() - start < 2 * (0.5 + VP.HARD_GRACE) + 5.0


@pytest.mark.slow
@settings(FUZZ, max_examples=2000)
@given(st.lists(HOSTILE_TEXT, min_size=5, max_size=5))
def test_fuzz_10k_hostile_strings_with_real_sympy(strings):
    """2000 examples x 5 strings = 10k hostile strings through the real worker."""
    for s in strings:
        assert compare(s, s).equal == (len(s) > V.MAX_ANSWER_CHARS or bool(normalize_answer(s)))
        assert isinstance(compare(s, "42", timeout=0.5).equal, bool)
