"""SWiRL action grammar, tools on hostile input, decomposition, judges and filters (no model)."""

from __future__ import annotations

import json
import random

import pytest

from reasonrl.rollout.tools import calculator
from reasonrl.swirl.actions import format_result, parse_action
from reasonrl.swirl.episodes import decompose, states
from reasonrl.swirl.judges import (
    FILTERS,
    apply_filter,
    keep,
    label,
    math_step_good,
    program_outcome_judge,
    program_process_judge,
    qa_step_good,
    same_answer,
)
from reasonrl.swirl.search import Article, SearchIndex
from reasonrl.swirl.worlds import knowledge_base, math_questions, qa_questions, scripted_trajectory, world_tools


@pytest.fixture(scope="module")
def world():
    people = knowledge_base(40, seed=0)
    index = SearchIndex([p.article() for p in people])
    return people, index, world_tools(index)


@pytest.mark.parametrize(("text", "want"), [
    ("<search_query>Tova Fenn</search_query>", ("search", "Tova Fenn")),
    ("I need the manager. <math_exp> 7 * 12 </math_exp>", ("math", "7 * 12")),
    ("<search_query>a</search_query> then <answer>Tarrow</answer>", ("answer", "Tarrow")),  # the last action
    ("<answer>36</answer> trailing words", ("answer", "36")),
    ("<answer><search_query>x</search_query></answer>", (None, "")),  # nested
    ("<search_query>x<answer>y</answer>", (None, "")),  # inside an unclosed action
    ("<search_query>x</math_exp>", (None, "")),  # mismatched
    ("<answer>unclosed", (None, "")),
    ("</answer>x<answer>", (None, "")),  # reversed
    ("<answer>   </answer>", (None, "")),  # empty
    ("<answer>" + "9" * 600 + "</answer>", (None, "")),  # too long
    ("<ANSWER>x</ANSWER>", (None, "")),
    ("", (None, "")),
    ("\x00<answer>\u202e\x07ok</answer>", ("answer", "\u202e\x07ok")),
    (None, (None, "")),
])
def test_parse_action(text, want):
    # Mutation: dropping the nesting check (tags[-3]) makes the "unclosed action" row parse as an answer.
    assert parse_action(text) == want


def test_parse_action_never_raises_on_random_text():
    rng = random.Random(0)
    alphabet = ["<", ">", "/", "answer", "search_query", "math_exp", "x", " ", "\n", "</answer>", "<answer>"]
    for _ in range(2000):
        kind, content = parse_action("".join(rng.choice(alphabet) for _ in range(rng.randrange(12))))
        assert kind in ("search", "math", "answer", None)
        assert (kind is None) == (content == "")


@pytest.mark.parametrize("expr", ["__import__('os').system('ls')", "2**99999", "1/0", "9" * 500, "(" * 150 + "1",
                                  "open('x')", "1e308*1e308", "[1]*10", "lambda: 1", "7 +", ""])
def test_calculator_refuses_hostile_expressions(expr):
    assert calculator(expr).startswith("error:")


def test_calculator_values():
    assert calculator("7 * 12 - 15") == "69"
    assert calculator("(3 + 4) / 2") == "3.5"


def test_search_on_hostile_queries(world):
    people, index, _ = world
    assert index.search(people[0].name).startswith(f"{people[0].name}: born in {people[0].city}")
    for query in ["", "   ", "\x00\x01\x1b[31m", "x" * 1000, "zzqx vvkp", ".*(?:a+)+$", "'; DROP TABLE--", None]:
        out = index.search(query)
        assert isinstance(out, str) and out.startswith("error:"), (query, out)
    assert not index.search("Bo Lind \x00 ((( \u202e").startswith("error")  # junk around real words still searches


def test_search_returns_the_named_article():
    # Mutation: indexing the title once (not three times) makes the article that only mentions Bo Lind win.
    index = SearchIndex([Article("Alia Moss", "born in Tarrow. manager: Bo Lind. mentor: Bo Lind."),
                         Article("Bo Lind", "born in Corin. manager: Cy Roe.")], result_chars=40)
    assert index.search("Bo Lind").startswith("Bo Lind: born in Corin")
    assert len(index.search("Bo Lind")) <= 40


def test_scripted_qa_solutions_are_right(world):
    people, _, tools = world
    rng = random.Random(0)
    records = qa_questions(people, "train")[:20]
    answers = [scripted_trajectory(r, tools, rng, people=people)[-1]["content"] for r in records]
    assert answers == [r["answer"] for r in records]


def test_decompose_gives_one_pair_per_action(world):
    people, _, tools = world
    record = qa_questions(people, "train")[0]
    steps = scripted_trajectory(record, tools, random.Random(0), people=people)
    assert [s["kind"] for s in steps] == ["search", "search", "answer"]
    traj = {"prompt": record["prompt"], "steps": steps}
    pairs = decompose(traj)
    assert len(pairs) == 3
    assert pairs[0] == (record["prompt"], steps[0]["text"])
    # s_{i+1} = s_i + a_i + "QUERY -> RESULT": the tool result is part of the next state
    assert pairs[1][0] == pairs[0][0] + steps[0]["text"] + format_result(steps[0]["content"], steps[0]["result"])
    assert f"{record['subject']} -> {record['subject']}:" in pairs[1][0]
    assert pairs[2][0].startswith(pairs[1][0] + steps[1]["text"])
    assert len(states(traj)) == 4
    assert decompose({"prompt": "p", "steps": []}) == []


def test_qa_process_judge(world):
    people, _, tools = world
    record = qa_questions(people, "train")[0]
    subject, prompt = record["subject"], record["prompt"]
    person = next(p for p in people if p.name == subject)
    first = tools["search"](subject)
    bridge = getattr(person, record["relation"])
    s2 = prompt + f"<search_query>{subject}</search_query>" + format_result(subject, first)
    second = tools["search"](bridge)
    s3 = s2 + f"<search_query>{bridge}</search_query>" + format_result(bridge, second)
    other = next(p.name for p in people if p.name not in (subject, bridge) and p.name not in first + second)
    assert qa_step_good(prompt, "search", subject)  # named by the question
    assert not qa_step_good(prompt, "search", other)  # named nowhere in the state: invented
    assert not qa_step_good(prompt, "search", bridge)  # not named yet by the question or a retrieved article
    assert qa_step_good(s2, "search", bridge.lower())  # the retrieved article names it
    assert not qa_step_good(s2, "search", subject)  # a repeated query
    assert qa_step_good(s3, "answer", record["answer"])
    assert not qa_step_good(s3, "answer", "Nowhere")  # no retrieved article states it
    assert not qa_step_good(s3, "answer", subject)  # the question's own name is no answer
    assert not qa_step_good(s3, None, "")
    # A question with no known field (a HotpotQA-style one): any phrase a retrieved article states, except the
    # question's own names.
    q = "Use tools.\nQuestion: Which river runs past Tarrow Vale?\n<search_query>Tarrow Vale</search_query>" + \
        format_result("Tarrow Vale", "Tarrow Vale: the Ivel river runs past Tarrow Vale.")
    assert qa_step_good(q, "answer", "the Ivel river") and qa_step_good(q, "search", "Ivel")
    assert not qa_step_good(q, "answer", "Tarrow Vale") and not qa_step_good(q, "answer", "the Severn")


def test_qa_answer_stated_in_a_retrieved_article_is_good_even_if_wrong(world):
    people, _, tools = world
    record = next(r for r in qa_questions(people, "train") if r["attribute"] == "city")
    person = next(p for p in people if p.name == record["subject"])
    assert person.city != record["answer"]  # the subject's own city answers the wrong hop
    s2 = record["prompt"] + f"<search_query>{person.name}</search_query>" + format_result(
        person.name, tools["search"](person.name))
    # The article states it, so it follows from the results (App. E: judge whether it follows, not whether it is
    # true). The old gold-aware judge said BAD here (it required the asked field of the *bridge's* article).
    assert qa_step_good(s2, "answer", person.city)
    assert not qa_step_good(s2, "answer", person.company)  # stated, but not what "where ... born" asks for
    assert not qa_step_good(record["prompt"], "answer", person.city)  # nothing retrieved yet


MATH_Q = "Use tools.\nQuestion: Hugo has 9 cards. He loses 8. He finds 3 more. How many cards does Hugo have now?\n"


def _math_state(*exprs: str) -> str:
    return MATH_Q + "".join(f"<math_exp>{e}</math_exp>" + format_result(e, calculator(e)) for e in exprs)


def test_math_process_judge_reads_the_state():
    assert math_step_good(MATH_Q, "math", "9 - 8")
    assert math_step_good(MATH_Q, "math", "9 + 8")  # a wrong operator over the right numbers is a sensible move
    assert not math_step_good(MATH_Q, "math", "9 - 7")  # 7 is in neither the question nor a result
    assert not math_step_good(MATH_Q, "math", "9")  # not an operation
    assert not math_step_good(MATH_Q, "math", "8 - 9")  # a negative count
    assert not math_step_good(MATH_Q, "math", "9 - 8 * (")  # not arithmetic
    assert not math_step_good(MATH_Q, "answer", "2")  # right, but nothing computed yet
    s2 = _math_state("9 - 8")
    assert math_step_good(s2, "math", "1 + 3")  # the running count 1 and the question's unused 3
    assert not math_step_good(s2, "math", "9 + 3")  # does not build on the latest result
    assert not math_step_good(s2, "math", "1 + 8")  # brings in nothing new (8 was used)
    assert not math_step_good(s2, "answer", "1")  # the question's "finds 3 more" is not used yet
    s3 = _math_state("9 - 8", "1 + 3")
    assert math_step_good(s3, "answer", "4.0")
    assert not math_step_good(s3, "answer", "1")  # not the latest result
    assert not math_step_good(s3, "search", "4")
    assert not math_step_good(s2, "math", "9 - 8")  # the previous call again
    eights = "Use tools.\nQuestion: Kira has 9 beads. She loses 8. She finds 8 more. She loses 8. She finds 8 more.\n"
    loop = eights + "".join(f"<math_exp>{e}</math_exp>" + format_result(e, calculator(e))
                            for e in ("9 - 8", "1 + 8", "9 - 8"))  # back to a running count of 1, one 8 unused
    assert math_step_good(loop, "math", "1 * 8")
    assert not math_step_good(loop, "math", "1 + 8")  # the same expression from the same count: a repeat


def test_process_good_trajectory_can_be_wrong_and_the_judge_never_reads_the_gold():
    # Sensible steps, wrong operator: process-GOOD at every step, outcome NO. The old judge compared each
    # expression with the record's gold intermediates (`ops`) and said BAD at the first step.
    record = {"task": "math", "prompt": MATH_Q, "answer": "4", "ops": [[9, "-", 8, 1], [1, "+", 3, 4]]}
    steps = [{"text": f"<math_exp>{e}</math_exp>", "kind": "math", "content": e, "result": calculator(e)}
             for e in ("9 + 8", "17 + 3")] + [{"text": "<answer>20</answer>", "kind": "answer", "content": "20",
                                               "result": None}]
    (labelled,) = label([{**record, "steps": steps}], program_process_judge(), program_outcome_judge())
    assert labelled["process"] == [1.0, 1.0, 1.0] and labelled["outcome"] == 0.0
    assert keep(labelled, "process") and not keep(labelled, "outcome") and not keep(labelled, "both")
    # Locality: with the gold fields gone or changed the process labels are the same.
    for gold in ({}, {"answer": "20", "ops": [[9, "+", 8, 17], [17, "+", 3, 20]]}):
        rec = {"task": "math", "prompt": MATH_Q, **gold}
        assert [program_process_judge()(rec, s, a) for s, a in decompose({**rec, "steps": steps})] == [1.0] * 3


def test_judge_noise_flips_a_fraction_deterministically():
    record = {"task": "math", "ops": [[1, "+", 1, 2]], "answer": "2", "prompt": "p\n"}
    clean, noisy = program_process_judge(), program_process_judge(noise=0.3, seed=1)
    actions = [f"<math_exp>1 + {i}</math_exp>" for i in range(400)]
    flips = sum(clean(record, "p\n", a) != noisy(record, "p\n", a) for a in actions)
    assert 80 < flips < 160  # about 30% of 400
    assert [noisy(record, "p\n", a) for a in actions] == [noisy(record, "p\n", a) for a in actions]


def test_filters_keep_the_right_trajectories():
    rows = [{"id": "gg", "process": [1.0, 0.9], "outcome": 1.0}, {"id": "gb", "process": [1.0, 1.0], "outcome": 0.0},
            {"id": "bg", "process": [1.0, 0.2], "outcome": 0.8}, {"id": "bb", "process": [0.0], "outcome": 0.1},
            {"id": "empty", "process": [], "outcome": 1.0}]
    kept = {name: [r["id"] for r in apply_filter(rows, name)] for name in FILTERS}
    # Mutation: `any` instead of `all` over the steps lets "bg" through the process filter.
    assert kept == {"none": ["gg", "gb", "bg", "bb", "empty"], "process": ["gg", "gb"],
                    "outcome": ["gg", "bg", "empty"], "both": ["gg"]}
    assert keep(rows[0], "both")
    with pytest.raises(Exception, match="unknown filter"):
        apply_filter(rows, "best")


def test_same_answer():
    assert same_answer("36.0", "36") and same_answer(" tarrow. ", "Tarrow")
    assert not same_answer(None, "36") and not same_answer("35", "36")


def test_math_world_ops_match_answers():
    for r in math_questions(20, "train", difficulty=2):
        assert r["ops"] and str(r["ops"][-1][3]) == r["answer"]
        assert scripted_trajectory(r, {"math": calculator}, random.Random(0))[-1]["content"] == r["answer"]


def test_swirl_data_reports_the_process_outcome_overlap(tmp_path, capsys):
    from reasonrl.cli import main

    out = tmp_path / "data"
    with pytest.raises(SystemExit) as e:
        main(["swirl-data", "--out", str(out), "--source", "scripted", "--num-questions", "12",
              "--num-per-question", "3", "--mistake-rate", "0.4", "--swirl.kb_people=40", "--swirl.hotpotqa=false",
              "--log.progress=false"])
    assert e.value.code == 0
    labelled = [json.loads(x) for x in (out / "labelled.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    # by hand from the labels: every step GOOD but the answer judged NO (e.g. the first hop's city)
    wrong = [t for t in labelled if all(p > 0.5 for p in t["process"]) and t["process"] and t["outcome"] <= 0.5]
    assert summary["overlap"]["process_kept_outcome_no"] == len(wrong) > 0
    assert summary["overlap"]["process_kept"] == summary["filters"]["process"]["trajectories"]
    assert f"process-kept that fail outcome: {len(wrong)} of" in capsys.readouterr().out
