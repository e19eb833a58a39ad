"""SWiRL action grammar, tools on hostile input, decomposition, judges and filters (no model)."""

from __future__ import annotations

import random

import pytest

from reasonrl.rollout.tools import calculator
from reasonrl.swirl.actions import format_result, parse_action
from reasonrl.swirl.episodes import decompose, states
from reasonrl.swirl.judges import (
    FILTERS,
    apply_filter,
    keep,
    math_step_good,
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
    first = tools["search"](subject)
    bridge = next(p for p in people if p.name == subject).__getattribute__(record["relation"])
    s2 = prompt + f"<search_query>{subject}</search_query>" + format_result(subject, first)
    second = tools["search"](bridge)
    s3 = s2 + f"<search_query>{bridge}</search_query>" + format_result(bridge, second)
    other = next(p.name for p in people if p.name not in (subject, bridge))
    assert qa_step_good(record, prompt, "search", subject)
    assert not qa_step_good(record, prompt, "search", other)  # not needed
    assert not qa_step_good(record, prompt, "search", bridge)  # not known yet from the context
    assert qa_step_good(record, s2, "search", bridge.lower())
    assert not qa_step_good(record, s2, "search", subject)  # a repeated query
    assert not qa_step_good(record, s2, "answer", record["answer"])  # true, but does not follow from s2 yet
    assert qa_step_good(record, s3, "answer", record["answer"])
    assert not qa_step_good(record, s3, "answer", "Nowhere")
    assert not qa_step_good(record, s3, None, "")


def test_math_process_judge():
    record = {"task": "math", "ops": [[7, "+", 7, 14], [14, "*", 3, 42]], "answer": "42", "prompt": "p\n"}
    s2 = "p\n<math_exp>7 + 7</math_exp>" + format_result("7 + 7", "14")
    assert math_step_good(record, "p\n", "math", "7 + 7")
    assert math_step_good(record, "p\n", "math", "14")  # any expression of the needed value
    assert not math_step_good(record, "p\n", "math", "7 + 8")
    assert not math_step_good(record, "p\n", "answer", "42")  # right, but not computed yet
    assert not math_step_good(record, s2, "math", "7 + 7")  # already computed
    assert math_step_good(record, s2, "math", "14 * 3")
    s3 = s2 + "<math_exp>14 * 3</math_exp>" + format_result("14 * 3", "42")
    assert math_step_good(record, s3, "answer", "42.0")
    assert not math_step_good(record, s3, "answer", "14")
    assert not math_step_good(record, s3, "search", "42")


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
