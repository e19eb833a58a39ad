"""Segmentation into thoughts and steps: exact round trip, keyword rules, the synthetic world's switches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reasonrl.retro.segment import (
    DEFAULT_KEYWORDS,
    SYNTHETIC_STEP_SEP,
    num_switches,
    segment,
    split_steps,
)
from reasonrl.tasks import synthetic


def _join(thoughts: list[list[str]]) -> str:
    return "".join(step for thought in thoughts for step in thought)


def test_paper_separator_by_hand():
    trace = "Let x = 2.\n\nSo 2x = 4.\n\nWait, check: 2 * 2 = 4.\n\nAlternatively, add: 2 + 2 = 4.\n\nAnswer 4"
    assert segment(trace) == [
        ["Let x = 2.\n\n", "So 2x = 4.\n\n"],
        ["Wait, check: 2 * 2 = 4.\n\n"],
        ["Alternatively, add: 2 + 2 = 4.\n\n", "Answer 4"],
    ]
    assert num_switches(trace) == 2


def test_keywords_are_case_sensitive_and_configurable():
    trace = "a\n\nwait, b\n\nHmm c\n\nSo d"
    assert len(segment(trace)) == 2  # "wait" (lower case) does not switch; "Hmm" does
    assert segment(trace, keywords=("So",)) == [["a\n\n", "wait, b\n\n", "Hmm c\n\n"], ["So d"]]


def test_keyword_only_at_the_start_of_a_step():
    assert len(segment("I said Wait here.\n\nand Alternatively there")) == 1


def test_synthetic_world_sentences():
    # a switch trace: a 1-step detour, "Alternatively, ...", then the full chain (hand-written as the world does)
    trace = ("Start with 7. 7 + 5 = 12. Alternatively, go step by step from the start. Start with 7. 7 + 5 = 12. "
             "12 - 3 = 9. The answer is \\boxed{9}.")
    thoughts = segment(trace, step_sep=SYNTHETIC_STEP_SEP)
    assert thoughts[0] == ["Start with 7.", " 7 + 5 = 12."]
    assert thoughts[1][0] == " Alternatively, go step by step from the start."
    assert thoughts[1][-1] == " The answer is \\boxed{9}."
    assert len(thoughts) == 2 and _join(thoughts) == trace


def test_synthetic_world_switch_and_slip_counts():
    records = synthetic.generate(60, seed=3, difficulty=3, slip_fraction=0.4, alt_fraction=0.4)
    for r in records:
        expected = {"gold": 0, "slip": 1, "switch": 1}[r["kind"]]
        assert num_switches(r["response"], step_sep=SYNTHETIC_STEP_SEP) == expected, r["response"]
        assert _join(segment(r["response"], step_sep=SYNTHETIC_STEP_SEP)) == r["response"]


_pieces = st.sampled_from(["x", " ", ".", "\n", "\n\n", "7", " = ", "Wait", "Alternatively", "But wait", "Hmm",
                           "wait", "Hold on", ", "])


@settings(max_examples=300, deadline=None)
@given(st.lists(_pieces, max_size=30), st.sampled_from(["\n\n", ".", "\n", ". "]))
def test_round_trip_random_traces(pieces, sep):
    trace = "".join(pieces)
    thoughts = segment(trace, step_sep=sep)
    assert _join(thoughts) == trace
    assert all(thoughts) and all(step for t in thoughts for step in t)
    steps = split_steps(trace, sep)
    assert all(s.endswith(sep) for s in steps[:-1])
    assert all(sep not in s[: len(s) - len(sep)] if s.endswith(sep) else sep not in s for s in steps)
    for t in thoughts[1:]:  # every later thought opens with a keyword, and no other step does
        assert t[0].lstrip().startswith(DEFAULT_KEYWORDS)
        assert not any(s.lstrip().startswith(DEFAULT_KEYWORDS) for s in t[1:])
