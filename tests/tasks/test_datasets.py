"""Loaders on every real file in shared/data, gold answers through the verifier, and user-file errors."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

import reasonrl
from reasonrl.errors import UserError
from reasonrl.tasks import datasets as D
from reasonrl.tasks.verify import compare, normalize_answer, parse_number, split_collection, symbolic_equal, verify

COUNTS = {("gsm8k", "train"): 7473, ("gsm8k", "test"): 1319, ("math500", "test"): 500, ("aime24", "test"): 30,
          ("amc23", "test"): 40}  # fmt: skip


@pytest.fixture(scope="module")
def named():
    return {key: D.load_named(key[0], split=key[1]) for key in COUNTS}


def test_data_root_default_is_beside_the_repo(monkeypatch):
    monkeypatch.delenv(D.DATA_ROOT_ENV, raising=False)
    expected = Path(reasonrl.__file__).resolve().parents[2] / "shared" / "data"
    assert D.data_root() == expected.resolve()
    assert (D.data_root() / "gsm8k" / "test.jsonl").is_file()


@pytest.mark.parametrize("key", list(COUNTS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_named_counts_prompts_ids(named, key):
    rows = named[key]
    assert len(rows) == COUNTS[key]
    assert all(isinstance(r["prompt"], str) and r["prompt"].strip() for r in rows)
    assert all(isinstance(r["answer"], str) and r["answer"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert rows[0]["id"] == f"{key[0]}-{key[1]}-0"


@pytest.mark.parametrize("key", [k for k in COUNTS if k[0] != "math500"], ids=lambda k: f"{k[0]}-{k[1]}")
def test_numeric_golds_take_the_exact_path(named, key):
    for r in named[key]:
        verdict = compare(r["answer"], r["answer"])
        assert verdict == (True, "number"), r


def test_first_records_by_hand(named):
    gsm = named[("gsm8k", "test")][0]
    assert gsm["answer"] == "18"
    assert "<<" not in gsm["response"] and "<<16-3-4=9>>" in gsm["raw_solution"]
    assert gsm["response"].endswith("#### 18")
    math = named[("math500", "test")][0]
    assert math["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert math["response"].endswith("The answer is: \\left( 3, \\frac{\\pi}{2} \\right)")
    aime = named[("aime24", "test")]
    assert aime[0]["answer"] == "204" and aime[7]["answer"] == "025" and aime[0]["response"]
    amc = named[("amc23", "test")]
    assert [r["answer"] for r in amc[:4]] == ["27", "36", "45", "3159"]  # stored as floats 27.0, ...
    assert amc[15]["answer"] == "-1" and amc[0]["response"] is None


def test_gsm8k_answers_have_no_commas_and_solutions_verify(named):
    for split in ("train", "test"):
        rows = named[("gsm8k", split)]
        assert all("," not in r["answer"] for r in rows)
        assert all(verify(r["response"], r["answer"]) for r in rows)
        assert all(verify(r["raw_solution"], r["answer"]) for r in rows)
    rows = named[("gsm8k", "test")]
    for r, other in zip(rows, rows[1:] + rows[:1], strict=True):  # a neighbour's answer is wrong unless equal
        assert verify(r["response"], other["answer"]) == (parse_number(r["answer"]) == parse_number(other["answer"]))


def test_math500_golds_self_equivalent_and_symbolic_count(named):
    rows = named[("math500", "test")]
    assert all(compare(r["answer"], r["answer"]).equal for r in rows)
    assert all(verify(r["response"], r["answer"]) for r in rows)
    kinds = collections.Counter()
    for r in rows:
        gold = normalize_answer(r["answer"])
        if parse_number(gold) is not None:
            kinds["number"] += 1
            continue
        if split_collection(gold):
            kinds["tuple"] += 1  # element-wise; its non-numeric elements go to sympy
            continue
        kinds["symbolic"] += 1
        assert symbolic_equal(gold, gold, timeout=20.0) is True, r["answer"]  # sympy really parses it
    print(f"MATH-500 gold answers by path: {dict(kinds)}")
    assert kinds == {"number": 401, "tuple": 21, "symbolic": 78}


def test_hotpotqa_sample():
    rows = D.load_hotpotqa()
    assert len(rows) == 53
    assert rows[0]["question"] == "Were Scott Derrickson and Ed Wood of the same nationality?"
    assert rows[0]["answer"] == "yes"
    for r in rows:
        assert r["question"].strip() and r["answer"].strip()
        assert r["context"] and all(isinstance(t, str) and sents for t, sents in r["context"])
        assert {title for title, _ in r["supporting_facts"]} <= {title for title, _ in r["context"]}
    assert sum(len(r["context"]) == 10 for r in rows) == 52


# ------------------------------------------------------------------------------------------------ user files


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_jsonl_fields_ids_and_blank_lines(tmp_path):
    # other keys of a line are kept as they are (a reward plug-in reads e.g. an anchor response from them)
    f = _write(tmp_path / "mine.jsonl", ['{"q": "1+1?", "a": 2, "anchor": "It is 2.", "meta": {"k": 1}}', "", "   ",
                                         '{"q": "2+2?", "a": "4", "id": "x7"}'])
    rows = D.load_jsonl(f, prompt_field="q", answer_field="a")
    assert rows == [
        {"prompt": "1+1?", "answer": "2", "response": None, "id": "mine:1", "anchor": "It is 2.", "meta": {"k": 1}},
        {"prompt": "2+2?", "answer": "4", "response": None, "id": "x7"},
    ]


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (['{"prompt": "a"}', "{not json"], r"bad\.jsonl:2: not valid JSON"),
        (['{"prompt": "a"}', "", "[1, 2]"], r"bad\.jsonl:3: expected a JSON object, got list"),
        (['{"prompt": "a"}', '{"answer": "1"}'], r"bad\.jsonl:2: missing required field 'prompt'"),
        (['{"prompt": "   "}'], r"bad\.jsonl:1: field 'prompt' is empty"),
        (['{"prompt": ["a"]}'], r"bad\.jsonl:1: chat message 0 must be an object with a string 'role'"),
        (['{"prompt": "a", "answer": true}'], r"bad\.jsonl:1: field 'answer' must be a string or a number, got bool"),
    ],
)
def test_load_jsonl_errors_name_file_line_key(tmp_path, lines, match):
    f = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(UserError, match=match):
        D.load_jsonl(f)


def test_load_jsonl_required_answer_and_bad_bytes(tmp_path):
    f = _write(tmp_path / "p.jsonl", ['{"prompt": "a", "answer": "1"}', '{"prompt": "b"}'])
    with pytest.raises(UserError, match=r"p\.jsonl:2: missing required field 'answer'"):
        D.load_jsonl(f, require=("prompt", "answer"))
    raw = tmp_path / "raw.jsonl"
    raw.write_bytes(b'{"prompt": "ok"}\n{"prompt": "\xff"}\n')
    with pytest.raises(UserError, match=r"raw\.jsonl:2: not valid JSON"):
        D.load_jsonl(raw)
    with pytest.raises(ValueError, match="require must name fields"):
        D.load_jsonl(f, require=("question",))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match=r"nope\.jsonl: no such file"):
        D.load_jsonl(tmp_path / "nope.jsonl")


def test_load_dataset_dispatch(tmp_path):
    assert D.load_dataset("amc23") == D.load_named("amc23")
    f = _write(tmp_path / "d.jsonl", [json.dumps({"question": "q", "final": "3", "solution": "s"})])
    assert D.load_dataset(str(f), prompt_field="question", answer_field="final", response_field="solution") == [
        {"prompt": "q", "answer": "3", "response": "s", "id": "d:1"}
    ]
    with pytest.raises(UserError, match="neither a known name .*aime24, amc23, gsm8k, math500"):
        D.load_dataset("gsm9k")
    with pytest.raises(UserError, match="field names apply to JSONL files only"):
        D.load_dataset("gsm8k", prompt_field="question")


def test_named_errors():
    with pytest.raises(UserError, match="no split 'train'; splits: test"):
        D.load_named("math500", split="train")
    with pytest.raises(UserError, match="unknown dataset 'mmlu'; known: aime24, amc23, gsm8k, math500"):
        D.load_named("mmlu")


def test_env_root_and_bad_named_file(tmp_path, monkeypatch):
    (tmp_path / "gsm8k").mkdir()
    _write(tmp_path / "gsm8k" / "test.jsonl", ['{"question": "q", "answer": "x\\n#### 1,000"}', '{"question": "q"}'])
    monkeypatch.setenv(D.DATA_ROOT_ENV, str(tmp_path))
    assert D.data_root() == tmp_path
    with pytest.raises(UserError, match=r"test\.jsonl:2: missing required field 'answer'"):
        D.load_named("gsm8k")
    _write(tmp_path / "gsm8k" / "test.jsonl", ['{"question": "q", "answer": "x\\n#### 1,000"}', "", '{"question": "q", '
                                               '"answer": "no final line"}'])  # fmt: skip
    with pytest.raises(UserError, match=r"test\.jsonl:3: GSM8K solution has no '#### <answer>' line"):
        D.load_named("gsm8k")
    monkeypatch.setenv(D.DATA_ROOT_ENV, str(tmp_path / "missing"))
    with pytest.raises(UserError, match=f"{D.DATA_ROOT_ENV}=.*missing: not a directory"):
        D.data_root()


def test_data_root_fallbacks(tmp_path, monkeypatch):
    monkeypatch.delenv(D.DATA_ROOT_ENV, raising=False)
    monkeypatch.setattr(reasonrl, "__file__", str(tmp_path / "elsewhere" / "repo" / "reasonrl" / "__init__.py"))
    (tmp_path / "work" / "repo").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "repo")
    with pytest.raises(UserError, match=r"no data folder: set REASONRL_DATA_ROOT \(looked in .*elsewhere.*work"):
        D.data_root()
    (tmp_path / "work" / "shared" / "data").mkdir(parents=True)
    assert D.data_root() == (tmp_path / "work" / "shared" / "data").resolve()


def test_a_lone_surrogate_is_named_where_the_file_is_read(tmp_path):
    """JSON may spell a lone UTF-16 surrogate; no tokenizer can encode it, so the loader names the line and field."""
    path = tmp_path / "s.jsonl"
    path.write_text('{"prompt": "Hi \\ud83d\\ude00", "answer": "1"}\n{"prompt": "a \\ud83d b", "answer": "1"}\n')
    with pytest.raises(UserError, match=r"s.jsonl:2: field 'prompt' is not valid Unicode text \(a lone surrogate"):
        D.load_jsonl(path)  # line 1's pair is a real emoji and passes
    path.write_text('{"prompt": "p", "answer": "1", "steps": [{"text": "\\udc00"}]}\n')
    with pytest.raises(UserError, match=r"s.jsonl:1: field 'steps'"):
        D.load_jsonl(path)  # nested text too: a reward may read any field
