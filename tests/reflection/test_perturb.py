"""Adversarial CoT builders: safe arithmetic, the seven perturbations (paper App. F.1), prompts, self sets."""

import json
import random
import re
from fractions import Fraction
from pathlib import Path

import pytest

from reasonrl.errors import UserError
from reasonrl.reflection.perturb import (
    GSM8K_TEMPLATE,
    SYNTHETIC_TEMPLATE,
    SYNTHETIC_TRIGGER_FORMAT,
    build_gsm8k_set,
    build_prompt,
    build_synthetic_set,
    self_reflection_set,
)
from reasonrl.reflection.perturbations import PERTURBATIONS, PerturbOptions
from reasonrl.reflection.programs import BinOp, Num, Ref, evaluate, format_number, parse_arithmetic, render_expr
from reasonrl.reflection.solutions import SyntheticTrace as Trace
from reasonrl.reflection.solutions import parse_gsm8k_solution, parse_synthetic_trace, perturb_gsm8k, perturb_synthetic
from reasonrl.tasks.synthetic import generate

F = Fraction
GSM8K_TEST = Path("/work/shared/data/gsm8k/test.jsonl")

# A made-up GSM8K-style item (not from the dataset): 24 - 6 - 3 = 15 cookies, 15 * 2 = $30.
MIA_Q = "Mia bakes 24 cookies. She gives 6 to her brother and eats 3. She sells the rest for $2 each. How much money?"
MIA_A = "Mia has 24 - 6 - 3 = <<24-6-3=15>>15 cookies left.\nShe makes 15 * 2 = $<<15*2=30>>30.\n#### 30"
# The first operation does not feed the answer: first-op perturbations cannot change it.
ANN_Q = "Ann has 4 red pens and 2 blue pens, and 3 pencils. How many pencils does she have after buying 2 more?"
ANN_A = "She has 4 + 2 = <<4+2=6>>6 pens.\nShe has 3 + 2 = <<3+2=5>>5 pencils.\n#### 5"
TRACE = "Start with 7. 7 + 5 = 12. 12 - 3 = 9. 9 * 2 = 18. The answer is \\boxed{18}."


def test_parse_arithmetic_values():
    assert evaluate(parse_arithmetic("16-3-4")) == 9  # left-associative: (16-3)-4
    assert evaluate(parse_arithmetic("2+3*4")) == 14  # precedence: 2+(3*4)
    assert evaluate(parse_arithmetic("(2+3)*4")) == 20
    assert evaluate(parse_arithmetic("-2*3")) == -6
    assert evaluate(parse_arithmetic(".5*8")) == 4
    assert evaluate(parse_arithmetic("10/4")) == F(5, 2)  # exact, no float


@pytest.mark.parametrize("text", ["2**3", "__import__('os')", "2+", "(1+2", "1+2)", "3 x 4", "", "9" * 30,
                                  "1+" * 150 + "1", "(" * 20 + "1" + ")" * 20])
def test_parse_arithmetic_rejects(text):
    with pytest.raises(ValueError):
        parse_arithmetic(text)


def test_division_by_zero_is_an_error():
    with pytest.raises(ZeroDivisionError):
        evaluate(parse_arithmetic("1/(2-2)"))


def test_render_expr_minimal_parentheses():
    assert render_expr(parse_arithmetic("(16-3-4)*3")) == "(16-3-4)*3"
    assert render_expr(parse_arithmetic("10-(4-1)"), spaced=True) == "10 - (4 - 1)"
    assert render_expr(parse_arithmetic("(8/4)/2")) == "8/4/2"
    assert render_expr(parse_arithmetic("8/(4/2)")) == "8/(4/2)"
    assert render_expr(parse_arithmetic("1.75-(-1.25)")) == "1.75-(-1.25)"
    assert render_expr(BinOp("*", Ref(0), Num(F(2))), [F(-1)]) == "(-1)*2"  # a negative result as an operand


def test_format_number():
    assert format_number(F(130000), like="130,000") == "130,000"
    assert format_number(F(3, 2)) == "1.5"
    assert format_number(F(4), like="4.00") == "4.00"  # zero-padded decimals are kept
    assert format_number(F(7), like="1.75") == "7"
    assert format_number(F(1, 3)) == "0.33"  # non-terminating: rounded to 2 places
    assert format_number(F(-3, 20)) == "-0.15"


def test_gsm8k_program_links_steps_and_question_variables():
    sol = parse_gsm8k_solution(MIA_Q, MIA_A)
    # question variables by first appearance: 24 -> 0, 6 -> 1, 3 -> 2, 2 -> 3
    assert sol.program[0].expr == BinOp("-", BinOp("-", Num(F(24), 0), Num(F(6), 1)), Num(F(3), 2))
    assert sol.program[1].expr == BinOp("*", Ref(0), Num(F(2), 3))  # 15 is step 0's result
    assert [s.value for s in sol.program] == [15, 30]
    assert sol.answer_step == 1 and sol.gold == "30"


def _mia(name: str, **opts) -> tuple[str, str]:
    sol = parse_gsm8k_solution(MIA_Q, MIA_A)
    out = perturb_gsm8k(sol, name, rng=random.Random(0), opts=PerturbOptions(**opts))
    assert out is not None
    return out


def test_scale_first_variable_propagates():
    # 24 * 2 = 48: 48 - 6 - 3 = 39 cookies, 39 * 2 = $78
    cot, wrong = _mia("scale_first_variable", scale_factors=(2,))
    assert cot == "Mia has 48 - 6 - 3 = <<48-6-3=39>>39 cookies left.\nShe makes 39 * 2 = $<<39*2=78>>78."
    assert wrong == "78"


def test_first_op_arithmetic_error_swap_and_miscalc():
    # (24 - 6) + 3 = 21, 21 * 2 = 42
    cot, wrong = _mia("first_op_arithmetic_error", arithmetic_modes=("swap_op",))
    assert cot == "Mia has 24 - 6 + 3 = <<24-6+3=21>>21 cookies left.\nShe makes 21 * 2 = $<<21*2=42>>42."
    assert wrong == "42"
    # same expression, stated result 15 + 1 = 16, which the next step uses: 16 * 2 = 32
    cot, wrong = _mia("first_op_arithmetic_error", arithmetic_modes=("miscalc",), miscalc_deltas=(1,))
    assert cot == "Mia has 24 - 6 - 3 = <<24-6-3=16>>16 cookies left.\nShe makes 16 * 2 = $<<16*2=32>>32."
    assert wrong == "32"


def test_first_op_extraneous_and_omission():
    # (24 - 6 - 3) * 3 = 45, 45 * 2 = 90
    cot, wrong = _mia("first_op_extraneous", extraneous_ops=("*",), extraneous_operands=(3,))
    assert cot == ("Mia has (24 - 6 - 3) * 3 = <<(24-6-3)*3=45>>45 cookies left.\n"
                   "She makes 45 * 2 = $<<45*2=90>>90.")
    assert wrong == "90"
    # 24 - 6 = 18 (the "- 3" is omitted), 18 * 2 = 36
    cot, wrong = _mia("first_op_omission")
    assert cot == "Mia has 24 - 6 = <<24-6=18>>18 cookies left.\nShe makes 18 * 2 = $<<18*2=36>>36."
    assert wrong == "36"


def test_last_op_perturbations():
    first_line = "Mia has 24 - 6 - 3 = <<24-6-3=15>>15 cookies left.\n"
    cot, wrong = _mia("last_op_arithmetic_error", arithmetic_modes=("swap_op",))
    assert (cot, wrong) == (first_line + "She makes 15 / 2 = $<<15/2=7.5>>7.5.", "7.5")  # 15 / 2 = 7.5
    cot, wrong = _mia("last_op_extraneous", extraneous_ops=("+",), extraneous_operands=(2,))
    assert (cot, wrong) == (first_line + "She makes 15 * 2 + 2 = $<<15*2+2=32>>32.", "32")  # 30 + 2
    cot, wrong = _mia("last_op_omission")  # the paper's own style: "She makes 9 = $<<9=9>>9"
    assert (cot, wrong) == (first_line + "She makes 15 = $<<15=15>>15.", "15")


def test_prose_mentions_of_changed_results_are_updated():
    q = "A car goes 120 miles an hour for 5 hours, then 100 more miles. How far does it go?"
    a = ("It goes 600 miles because 5 x 120 = <<5*120=600>>600\nIn total it goes 600 + 100 = <<600+100=700>>700 "
         "miles.\nSo it goes 700 miles.\n#### 700")
    sol = parse_gsm8k_solution(q, a)
    cot, wrong = perturb_gsm8k(sol, "scale_first_variable", rng=random.Random(0),
                               opts=PerturbOptions(scale_factors=(2,)))
    # 120 is the question's first number: 5 * 240 = 1200, 1200 + 100 = 1300; the tail restates the answer
    assert cot == ("It goes 1200 miles because 5 x 240 = <<5*240=1200>>1200\nIn total it goes 1200 + 100 = "
                   "<<1200+100=1300>>1300 miles.\nSo it goes 1300 miles.")
    assert wrong == "1300"


def test_unchanged_answer_is_dropped_and_scale_falls_back_to_next_variable():
    sol = parse_gsm8k_solution(ANN_Q, ANN_A)
    for name in ("first_op_arithmetic_error", "first_op_extraneous", "first_op_omission"):
        assert perturb_gsm8k(sol, name, rng=random.Random(0)) is None
    # scaling 4 leaves the pencils at 5, so the next variable, 2, is scaled: 4 + 4 = 8 pens, 3 + 4 = 7 pencils
    cot, wrong = perturb_gsm8k(sol, "scale_first_variable", rng=random.Random(0),
                               opts=PerturbOptions(scale_factors=(2,)))
    assert cot == "She has 4 + 4 = <<4+4=8>>8 pens.\nShe has 3 + 4 = <<3+4=7>>7 pencils."
    assert wrong == "7"


def test_a_result_and_an_equal_question_number_in_one_expression():
    # in 3 + 3, one 3 is step 0's result and the other the question's "three more" [I]
    q = "Sid ordered 10 subs and ate 7. Then he ordered three more. How many subs does he have?"
    sol = parse_gsm8k_solution(q, "He has 10 - 7 = <<10-7=3>>3 subs.\nThen 3 + 3 = <<3+3=6>>6 subs.\n#### 6")
    assert sol.program[1].expr == BinOp("+", Ref(0), Num(F(3), 2))  # question variables: 10, 7, three
    cot, wrong = perturb_gsm8k(sol, "scale_first_variable", rng=random.Random(0),
                               opts=PerturbOptions(scale_factors=(2,)))
    assert (cot, wrong) == ("He has 20 - 7 = <<20-7=13>>13 subs.\nThen 13 + 3 = <<13+3=16>>16 subs.", "16")


def test_untouched_steps_keep_their_stated_result():
    # 2/3 * 100 is written as 67 (not 66.67); a change to the last step must not recompute the first
    q = "A class has 100 students and 2/3 of them like math. 10 of those leave. How many math fans are left?"
    a = "2/3*100=<<2/3*100=67>>67 like math.\nThen 67 - 10 = <<67-10=57>>57 are left.\n#### 57"
    sol = parse_gsm8k_solution(q, a)
    cot, wrong = perturb_gsm8k(sol, "last_op_omission", rng=random.Random(0))
    assert (cot, wrong) == ("2/3*100=<<2/3*100=67>>67 like math.\nThen 67 = <<67=67>>67 are left.", "67")


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_build_gsm8k_set_records_stats_and_determinism(tmp_path):
    path = _write_jsonl(tmp_path / "g.jsonl", [{"question": MIA_Q, "answer": MIA_A},
                                                {"question": ANN_Q, "answer": ANN_A},
                                                {"question": "How many?", "answer": "She has 5 apples.\n#### 5"}])
    records, stats = build_gsm8k_set(path, seed=0)
    assert stats["num_items"] == 3
    assert stats["unparseable"] == {"final answer not computed by an annotation": 1}
    first_ops = {"first_op_arithmetic_error", "first_op_extraneous", "first_op_omission"}
    assert stats["kept"] == {p: 1 if p in first_ops else 2 for p in PERTURBATIONS}  # Ann's first ops are dropped
    assert stats["dropped"] == {p: 1 if p in first_ops else 0 for p in PERTURBATIONS}
    assert len(records) == 11 and records[0]["id"] == "gsm8k-0/scale_first_variable"
    assert set(records[0]) == {"id", "question", "adversarial_cot", "gold_answer", "wrong_answer", "perturbation"}
    # Mia scaled by one of the default factors f in (2, 3, 4, 5): (24 f - 9) * 2
    assert records[0]["wrong_answer"] in {str((24 * f - 9) * 2) for f in (2, 3, 4, 5)}
    assert all(r["gold_answer"] != r["wrong_answer"] and "####" not in r["adversarial_cot"] for r in records)
    assert build_gsm8k_set(path, seed=0)[0] == records  # deterministic
    scaled = {build_gsm8k_set(path, seed=s, perturbations=["scale_first_variable"])[0][0]["wrong_answer"]
              for s in range(8)}
    assert len(scaled) > 1  # the factor is drawn from the seed


def test_keep_answer_line(tmp_path):
    path = _write_jsonl(tmp_path / "g.jsonl", [{"question": MIA_Q, "answer": MIA_A}])
    records, _ = build_gsm8k_set(path, perturbations=["last_op_omission"], opts=PerturbOptions(keep_answer_line=True))
    assert records[0]["adversarial_cot"].endswith("She makes 15 = $<<15=15>>15.\n#### 15")


def test_build_gsm8k_set_user_errors(tmp_path):
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"question": MIA_Q, "answer": MIA_A}, "{not json"])
    with pytest.raises(UserError, match=r"bad.jsonl:2"):
        build_gsm8k_set(bad)
    missing = _write_jsonl(tmp_path / "missing.jsonl", [{"question": MIA_Q}])
    with pytest.raises(UserError, match=r"missing.jsonl:1: missing key 'answer'"):
        build_gsm8k_set(missing)
    ok = _write_jsonl(tmp_path / "ok.jsonl", [{"question": MIA_Q, "answer": MIA_A}])
    with pytest.raises(UserError, match="perturbations: unknown 'typo'"):
        build_gsm8k_set(ok, perturbations=["typo"])


@pytest.mark.parametrize("bad", [{"arithmetic_modes": ("typo",)}, {"extraneous_ops": ("^",)}, {"omit_order": ()},
                                 {"scale_factors": (1, 2)}])
def test_perturb_options_are_validated(bad):
    with pytest.raises(UserError, match="reflection options"):
        PerturbOptions(**bad)


@pytest.mark.skipif(not GSM8K_TEST.exists(), reason="GSM8K test set not available")
def test_real_gsm8k_subset_is_consistent(tmp_path):
    rows = GSM8K_TEST.read_text().splitlines()[:120]
    records, stats = build_gsm8k_set(_write_jsonl(tmp_path / "sub.jsonl", rows), seed=0)
    num_parsed = stats["num_items"] - sum(stats["unparseable"].values())
    assert num_parsed >= 100
    for name in PERTURBATIONS:
        assert stats["kept"][name] + stats["dropped"][name] == num_parsed
        assert stats["kept"][name] >= 0.8 * num_parsed
    for r in records:
        assert Fraction(r["wrong_answer"]) != Fraction(r["gold_answer"].replace(",", ""))
        for m in re.finditer(r"<<([^<>=]*)=([^<>=]*)>>(\d[\d,]*(?:\.\d+)?)?", r["adversarial_cot"]):
            stated = Fraction(m.group(2))
            if m.group(3):  # the result written after the annotation is the annotated one
                assert Fraction(m.group(3).replace(",", "")) == stated
            if "arithmetic" not in r["perturbation"]:  # only a miscalculation may state a wrong result
                assert abs(evaluate(parse_arithmetic(m.group(1))) - stated) <= Fraction(1, 100) * max(1, abs(stated))


def _syn(name: str, **opts) -> tuple[str, str] | None:
    trace = Trace(TRACE, *parse_synthetic_trace(TRACE))
    return perturb_synthetic(trace, name, rng=random.Random(0), opts=PerturbOptions(**opts))


def test_synthetic_perturbations_hand_values():
    assert _syn("scale_first_variable", scale_factors=(2,)) == (
        "Start with 14. 14 + 5 = 19. 19 - 3 = 16. 16 * 2 = 32.", "32")  # 7 * 2 = 14, propagated
    assert _syn("first_op_arithmetic_error", arithmetic_modes=("miscalc",), miscalc_deltas=(1,)) == (
        "Start with 7. 7 + 5 = 13. 13 - 3 = 10. 10 * 2 = 20.", "20")  # 12 stated as 13
    assert _syn("first_op_extraneous", extraneous_ops=("*",), extraneous_operands=(3,)) == (
        "Start with 7. (7 + 5) * 3 = 36. 36 - 3 = 33. 33 * 2 = 66.", "66")
    assert _syn("first_op_omission") == ("Start with 7. 7 = 7. 7 - 3 = 4. 4 * 2 = 8.", "8")
    assert _syn("last_op_extraneous", extraneous_ops=("+",), extraneous_operands=(4,)) == (
        "Start with 7. 7 + 5 = 12. 12 - 3 = 9. 9 * 2 + 4 = 22.", "22")
    assert _syn("last_op_omission") == ("Start with 7. 7 + 5 = 12. 12 - 3 = 9. 9 = 9.", "9")


def test_synthetic_stays_integer():
    # 9 / 2 is not an integer, so swapping * for / is rejected; a miscalculation 18 + 2 is used instead
    assert _syn("last_op_arithmetic_error", arithmetic_modes=("swap_op",)) is None
    assert _syn("last_op_arithmetic_error", miscalc_deltas=(2,)) == (
        "Start with 7. 7 + 5 = 12. 12 - 3 = 9. 9 * 2 = 20.", "20")


def test_synthetic_set_from_generated_traces():
    data = generate(40, seed=3, difficulty=3, split="test", slip_fraction=0.25)
    records, stats = build_synthetic_set(data, seed=0)
    num_gold = sum(r["kind"] == "gold" for r in data)
    assert stats["unparseable"].get("not a gold trace", 0) == len(data) - num_gold > 0  # slips are not used
    by_id = {r["id"]: r for r in data}
    for rec in records:
        src = by_id[rec["id"].split("/")[0]]
        assert rec["question"] == src["prompt"] and rec["gold_answer"] == src["answer"]
        last = re.findall(r"= (-?\d+)\.", rec["adversarial_cot"])[-1]
        assert last == rec["wrong_answer"] != rec["gold_answer"]  # the CoT ends on the wrong answer
        assert "boxed" not in rec["adversarial_cot"]
    assert stats["kept"]["last_op_omission"] == num_gold


def test_self_reflection_set_keeps_questions_every_checkpoint_got_wrong():
    def res(qid, correct):
        return {"id": qid, "question": f"Q{qid}", "cot": f"cot-{qid}", "correct": correct, "gold_answer": 1}

    results = {"a": [res("q1", False), res("q2", False), res("q3", True)],
               "b": [{**res("q1", False), "cot": "own cot of b", "answer": "7"}, res("q2", True), res("q3", False)],
               "c": [res("q1", False), res("q2", False)]}
    out = self_reflection_set(results)
    assert [r["id"] for r in out["a"]] == ["q1"] and [r["id"] for r in out["c"]] == ["q1"]
    assert out["b"] == [{"id": "q1", "question": "Qq1", "adversarial_cot": "own cot of b", "gold_answer": "1",
                         "wrong_answer": "7", "perturbation": "self"}]
    with pytest.raises(UserError, match=r"results\['a'\]\[0\]: missing key 'cot'"):
        self_reflection_set({"a": [{"id": "q", "question": "", "correct": False, "gold_answer": 1}]})
    with pytest.raises(UserError, match="duplicate id"):
        self_reflection_set({"a": [res("q1", False), res("q1", False)]})


def test_build_prompt_matches_released_gsm8k_task():
    item = {"question": "Q {cot}?", "adversarial_cot": "1 + 1 = <<1+1=3>>3"}
    released = ("Answer the question: \n\n" + item["question"] + "\nPlease always end your response with the final "
                "numerical answer.\n" + " Let\u2019s solve this step by step \u2026 " + item["adversarial_cot"]
                + " Wait, ")
    assert build_prompt(item) == released
    assert build_prompt(item, trigger="") == released[: -len(" Wait, ")]
    assert build_prompt(item, trigger="Wait, I made a mistake").endswith("<<1+1=3>>3 Wait, I made a mistake ")
    assert build_prompt(item, template="{question}|{cot}{trigger}", trigger=None) == "Q {cot}?|1 + 1 = <<1+1=3>>3"
    assert GSM8K_TEMPLATE.count("{cot}") == 1
    synthetic = build_prompt({"question": "Ana has 7 pens. How many?", "adversarial_cot": "Start with 7. 7 + 1 = 9."},
                             template=SYNTHETIC_TEMPLATE, trigger_format=SYNTHETIC_TRIGGER_FORMAT)
    assert synthetic == "Ana has 7 pens. How many?\nStart with 7. 7 + 1 = 9. Wait,"


def test_build_prompt_user_errors():
    with pytest.raises(UserError, match="missing key 'adversarial_cot'"):
        build_prompt({"id": "x", "question": "q"})
    with pytest.raises(UserError, match="must contain {cot}"):
        build_prompt({"question": "q", "adversarial_cot": "c"}, template="{question}")
    with pytest.raises(UserError, match="must contain {trigger}"):
        build_prompt({"question": "q", "adversarial_cot": "c"}, template="{question}{cot}")


def test_a_gsm8k_file_gets_the_data_loaders_checks(tmp_path):
    """read_jsonl goes through tasks.datasets.read_objects: bad bytes and a line that is not an object are one
    UserError naming file:line (bytes not UTF-8 escaped as a UnicodeDecodeError before). Mutation: the old
    json.loads reader -> the first case raises UnicodeDecodeError."""
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(b'{"question": "caf\xe9", "answer": "#### 1"}\n')
    with pytest.raises(UserError, match=r"bytes.jsonl:1: not valid JSON"):
        build_gsm8k_set(path)
    listed = _write_jsonl(tmp_path / "list.jsonl", [{"question": MIA_Q, "answer": MIA_A}, [1, 2]])
    with pytest.raises(UserError, match=r"list.jsonl:2: expected a JSON object, got list"):
        build_gsm8k_set(listed)
