from fractions import Fraction

import pytest

from reasonrl.tasks import synthetic
from reasonrl.tasks.synthetic import LEVELS, Problem, generate, render_gold, verify


def test_generate_is_deterministic_by_seed():
    a = generate(50, seed=3, difficulty=2, slip_fraction=0.3, alt_fraction=0.3)
    b = generate(50, seed=3, difficulty=2, slip_fraction=0.3, alt_fraction=0.3)
    c = generate(50, seed=4, difficulty=2, slip_fraction=0.3, alt_fraction=0.3)
    assert a == b
    assert a != c


@pytest.mark.parametrize("difficulty", sorted(LEVELS))
def test_every_gold_response_verifies_and_arithmetic_is_right(difficulty):
    for r in generate(300, seed=1, difficulty=difficulty, slip_fraction=0.3, alt_fraction=0.3):
        assert verify(r["response"], r["answer"]), r
        assert r["response"].endswith(f"\\boxed{{{r['answer']}}}.")
        # every `a op b = c.` step that is not the slipped one is correct arithmetic
        sentences = r["response"].replace(" Wait,", ".|").split(". ")
        for s in sentences:
            parts = s.strip(".|").split()
            if len(parts) == 5 and parts[1] in "+-*/" and parts[3] == "=" and not s.endswith("|"):
                a, op, b, c = int(parts[0]), parts[1], int(parts[2]), int(parts[4])
                assert synthetic.apply_op(a, op, b) == c, (s, r["response"])


def test_number_of_steps_follows_difficulty():
    for d, level in LEVELS.items():
        r = generate(5, seed=0, difficulty=d)[0]
        assert r["response"].count(" = ") == level.steps


def test_train_and_test_never_share_arithmetic():
    def key(r):  # the arithmetic: everything but names and items
        return r["response"]

    train = {key(r) for r in generate(3000, seed=0, difficulty=1, split="train")}
    test = {key(r) for r in generate(300, seed=0, difficulty=1, split="test")}
    assert train and test
    assert not train & test
    # and the split is a property of the problem, so other seeds agree
    test_other_seed = {key(r) for r in generate(300, seed=9, difficulty=1, split="test")}
    assert not train & test_other_seed


def test_slip_and_switch_fractions_and_control():
    recs = generate(1000, seed=0, difficulty=2, slip_fraction=0.2, alt_fraction=0.1)
    kinds = [r["kind"] for r in recs]
    assert 0.15 < kinds.count("slip") / 1000 < 0.25
    assert 0.06 < kinds.count("switch") / 1000 < 0.14
    for r in recs:
        assert ("Wait," in r["response"]) == (r["kind"] == "slip")
        assert ("Alternatively," in r["response"]) == (r["kind"] == "switch")
    control = generate(1000, seed=0, difficulty=2, slip_fraction=0.0, alt_fraction=0.0)
    assert not any("Wait" in r["response"] or "Alternatively" in r["response"] for r in control)


def test_slip_is_wrong_then_corrected():
    r = next(r for r in generate(200, seed=0, difficulty=2, slip_fraction=1.0) if r["kind"] == "slip")
    before, after = r["response"].split(" Wait, ")
    wrong_step = before.split(". ")[-1].rstrip(".")
    right_step = after.split(".")[0]
    lhs_w, res_w = wrong_step.split(" = ")
    lhs_r, res_r = right_step.split(" = ")
    assert lhs_w == lhs_r and res_w != res_r


def test_hand_written_problem_renders_the_expected_trace():
    p = Problem(start=7, ops=(("+", 5), ("-", 3), ("*", 2)))
    # 7 + 5 = 12; 12 - 3 = 9; 9 * 2 = 18
    assert render_gold(p) == ["Start with 7.", "7 + 5 = 12.", "12 - 3 = 9.", "9 * 2 = 18."]
    assert p.answer == 18


@pytest.mark.parametrize(
    "response, answer, ok",
    [
        ("so \\boxed{18}.", "18", True),
        ("\\boxed{17} then \\boxed{18}", "18", True),  # the last box counts
        ("\\boxed{18}", "17", False),
        ("\\boxed{3/4}", "0.75", True),
        ("\\boxed{1,000}", "1000", True),
        ("no box 18", "18", False),
        ("\\boxed{eighteen}", "18", False),
        ("\\boxed{1/0}", "18", False),
    ],
)
def test_exact_verifier(response, answer, ok):
    assert verify(response, answer) is ok


def test_answers_are_integers():
    for r in generate(200, seed=0, difficulty=4):
        assert Fraction(r["answer"]).denominator == 1
