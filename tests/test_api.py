"""The Python API (reasonrl/api.py): `import reasonrl` is light and gives load_config / sft / rl / evaluate; data and
rewards are passed as Python objects and validated as files are; a run gives back its model directory, metrics and
summary; the README's example runs as printed; the CLI's sft / rl / eval go through these functions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import reasonrl
from reasonrl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
MICRO = {"model.path": "", "model.preset": "micro", "data.difficulty": 1, "train.eval_examples": 2,
         "train.eval_every": 0, "rollout.max_new_tokens": 8, "rollout.num_samples": 2, "rl.algo": "grpo",
         "rl.prompts_per_step": 2, "rl.minibatch_size": 4, "log.progress": False, "log.plots": False}
PROBLEMS = [{"prompt": f"Ana has {n} pens. She buys 2 more. How many pens does Ana have now?", "answer": str(n + 2),
             "colour": c} for n, c in zip(range(1, 7), ["red", "blue"] * 3, strict=True)]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- api-example -->\n```python\n(.*?)\n```", text, re.S)
    assert found, "README.md has no <!-- api-example --> python block"
    return found.group(1)


def test_the_readme_example_runs_as_printed(tmp_path):
    code = readme_example()
    assert len(code.splitlines()) <= 15
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
                            "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    model_dir, bonus, heldout = r.stdout.splitlines()[0].split()
    assert model_dir == "runs/api/final" and (tmp_path / model_dir / "model.safetensors").is_file()
    assert 0.0 <= float(bonus) <= 0.5 and 0.0 <= float(heldout) <= 1.0
    acc, reward, num_samples = r.stdout.strip().splitlines()[-1].split()
    assert int(num_samples) == 2 and 0.0 <= float(reward) <= 0.5  # the format bonus's range
    summary = json.loads((tmp_path / "runs" / "api_eval" / "summary.json").read_text())
    assert summary["reward"] == pytest.approx(float(reward)) and summary["mean@n"] == pytest.approx(float(acc))


def test_import_reasonrl_is_light():
    code = "import sys, reasonrl; print('torch' in sys.modules, reasonrl.rl.__module__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.stdout.split() == ["False", "reasonrl.api"], r.stderr


def test_load_config_takes_python_values_or_command_line_text(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\nsteps = 7\n[rl]\nalgo = "ppo"\n')
    cfg = reasonrl.load_config(toml, {"rl.algo": "grpo", "reward.kinds": ["verifier", "r.py:f"], "optim.lr": 1})
    assert (cfg.train.steps, cfg.rl.algo, cfg.reward.kinds, cfg.optim.lr) == (7, "grpo", ["verifier", "r.py:f"], 1.0)
    assert reasonrl.load_config(overrides=["--train.steps=3"]).train.steps == 3
    for overrides, needle in (({"train.steps": 0}, "overrides: train.steps must be >= 1"),
                              ({"train.steps": "3"}, "overrides: train.steps: expected int"),
                              ({"rl": {"algo": "grpo"}}, "overrides: key 'rl' must look like 'section.key'")):
        with pytest.raises(UserError, match=re.escape(needle)):
            reasonrl.load_config(overrides=overrides)


def test_a_config_changed_by_hand_is_checked_again(tmp_path):
    cfg = reasonrl.load_config(overrides={**MICRO, "log.run_dir": str(tmp_path / "run")})
    cfg.train.steps = 0
    with pytest.raises(UserError, match="config: train.steps must be >= 1"):
        reasonrl.rl(cfg)
    cfg.train.steps, cfg.rl.algo = 1, "dapo"
    with pytest.raises(UserError, match="config: rl.algo: 'dapo' is not one of"):
        reasonrl.rl(cfg)
    assert not (tmp_path / "run").exists()


def test_rl_with_a_dataset_and_a_callable(tmp_path):
    from datasets import Dataset

    seen = []

    def colour_bonus(prompts, completions, colour, **columns):
        seen.append(list(colour))
        return [0.25 if c == "red" else 0.0 for c in colour]

    cfg = reasonrl.load_config(overrides={**MICRO, "train.steps": 2, "log.run_dir": str(tmp_path / "run"),
                                          "reward.weights": [1.0, 2.0]})
    result = reasonrl.rl(cfg, reward=["verifier", colour_bonus], train_data=Dataset.from_list(PROBLEMS),
                         test_data=PROBLEMS[:2])
    assert result.model_dir == tmp_path / "run" / "final" and (result.model_dir / "model.safetensors").is_file()
    steps = [m for m in result.metrics if "reward" in m]
    assert [m["step"] for m in steps] == [1, 2]
    for m in steps:  # 2 prompts x 2 samples, a red and a blue problem or two of one colour
        assert m["reward"] == pytest.approx(m["reward/verifier"] + 2.0 * m["reward/colour_bonus"], abs=1e-6)
    assert seen[0] == ["red", "red", "blue", "blue"]  # the dry call: 2 samples of the first 2 rows; columns as lists
    assert set(result.summary) >= {"heldout_acc", "heldout_len", "step"} and result.summary["step"] == 2
    assert cfg.log.run_dir == str(tmp_path / "run") and cfg.reward.weights == [1.0, 2.0]  # the caller's cfg as it was


@pytest.mark.parametrize("data, needle", [
    ([PROBLEMS[0], "not a dict"], "train data[1]: expected a dict, got str"),
    ([{"prompt": "p"}], "train data[0]: missing required field 'answer'"),
    ([{"prompt": " ", "answer": "1"}], "train data[0]: field 'prompt' is empty"),
    ([{"prompt": "p", "answer": [1]}], "train data[0]: field 'answer' must be a string or a number, got list"),
    ((row for row in PROBLEMS), "train data: expected a list of dicts or a datasets.Dataset, got generator"),
    ([], "train data: no records (it is empty)"),
])
def test_bad_data_is_one_line_before_anything_is_written(tmp_path, data, needle):
    cfg = reasonrl.load_config(overrides={**MICRO, "train.steps": 1, "log.run_dir": str(tmp_path / "run")})
    with pytest.raises(UserError) as e:
        reasonrl.rl(cfg, train_data=data, test_data=PROBLEMS)
    assert str(e.value) == needle
    assert not (tmp_path / "run").exists()


def test_a_bad_reward_callable_is_refused_by_its_dry_call(tmp_path):
    cfg = reasonrl.load_config(overrides={**MICRO, "train.steps": 1, "log.run_dir": str(tmp_path / "run")})
    with pytest.raises(UserError, match="reward 'one_score': returned 1 scores for 4 completions"):
        reasonrl.rl(cfg, reward=lambda_free_one_score, train_data=PROBLEMS)
    assert not (tmp_path / "run").exists()


def lambda_free_one_score(prompts, completions, **kw):
    return [1.0]


lambda_free_one_score.__name__ = "one_score"


def test_sft_and_evaluate_with_python_data(tmp_path):
    sft_data = [{**p, "response": f"{int(p['answer']) - 2} + 2 = {p['answer']}. \\boxed{{{p['answer']}}}."}
                for p in PROBLEMS]
    cfg = reasonrl.load_config(overrides={**MICRO, "train.steps": 2, "train.batch_size": 2,
                                          "log.run_dir": str(tmp_path / "sft")})
    result = reasonrl.sft(cfg, train_data=sft_data, test_data=PROBLEMS[:2])
    assert [m["step"] for m in result.metrics if "loss" in m] == [1, 2] and result.model_dir.is_dir()
    ev = reasonrl.evaluate(reasonrl.load_config(overrides={"model.path": str(result.model_dir),
                                                           "rollout.max_new_tokens": 8, "log.progress": False}),
                           data=PROBLEMS[:3], reward=lambda_free_one_score_each, out_dir=tmp_path / "eval")
    assert len(ev.samples) == 3 and ev.summary["num_problems"] == 3
    assert [s["reward"] for s in ev.samples] == [1.0, 1.0, 1.0] and ev.summary["reward"] == 1.0
    assert ev.summary["data"] == "list (Python data)" and (tmp_path / "eval" / "summary.json").is_file()


def lambda_free_one_score_each(completions, **kw):
    return [1.0] * len(completions)


@pytest.mark.parametrize("command, name", [("sft", "sft"), ("rl", "rl"), ("eval", "evaluate")])
def test_the_cli_calls_the_api(monkeypatch, tmp_path, command, name):
    import reasonrl.api
    from reasonrl.cli import run

    monkeypatch.chdir(tmp_path)  # were the API not called, the default run would write under runs/ here
    calls = []
    monkeypatch.setattr(reasonrl.api, name, lambda cfg, **kw: calls.append((cfg.train.steps, kw)))
    assert run([command, "--train.steps=5"]) == 0
    assert calls == [(5, {"out_dir": None, "overwrite": False} if command == "eval" else {})]


def test_held_out_data_defaults_to_the_training_data_with_a_warning(capsys):
    from reasonrl.api import _test_data

    cfg = reasonrl.load_config()
    capsys.readouterr()
    assert _test_data(cfg, PROBLEMS, None) is PROBLEMS
    assert "held-out accuracy will be measured on the training data" in capsys.readouterr().err
    assert _test_data(cfg, PROBLEMS, PROBLEMS[:1]) == PROBLEMS[:1] and _test_data(cfg, None, None) is None
    assert _test_data(reasonrl.load_config(overrides={"data.test_source": "gsm8k"}), PROBLEMS, None) is None
    assert capsys.readouterr().err == ""


def test_python_records_map_fields_as_jsonl_files_do():
    from reasonrl.tasks.memory import records_from

    cfg = reasonrl.load_config(overrides={"data.prompt_field": "question", "data.answer_field": "solution"})
    rows = [{"question": "What is 1 + 1?", "solution": 2.0, "topic": "sums"}, {"question": "q", "solution": "x",
                                                                              "id": 7},
            {"question": "r", "solution": "y", "id": None}]  # a null id takes the default, as in a Dataset
    records = records_from(rows, cfg.data, require=("prompt", "answer"), where="train data")
    assert records == [{"topic": "sums", "prompt": "What is 1 + 1?", "answer": "2", "response": None,
                        "id": "train data:0"},
                       {"prompt": "q", "answer": "x", "response": None, "id": "7"},
                       {"prompt": "r", "answer": "y", "response": None, "id": "train data:2"}]


def test_python_records_check_text_and_read_chat_prompts():
    """In-memory rows get the file loaders' checks: a lone surrogate is named before any tokenizer sees it, and a
    prompt that is a list of chat messages is split as a chat-format file's is (`prompt_messages`, the last user
    turn as the prompt text, a final assistant turn as the response)."""
    from reasonrl.errors import UserError
    from reasonrl.tasks.memory import records_from

    cfg = reasonrl.load_config()
    with pytest.raises(UserError, match=r"train data\[1\].*prompt"):
        records_from([{"prompt": "fine", "answer": "1"}, {"prompt": "bad \ud800", "answer": "1"}], cfg.data,
                     require=("prompt", "answer"), where="train data")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "\\boxed{4}"}]
    (rec,) = records_from([{"prompt": chat, "answer": 4}], cfg.data, require=("prompt", "answer", "response"),
                          where="sft data")
    assert rec["prompt"] == "What is 2 + 2?" and rec["response"] == "\\boxed{4}" and rec["answer"] == "4"
    assert rec["prompt_messages"] == chat[:2]


def test_python_records_are_mapped_by_the_jsonl_loaders_function(tmp_path):
    """A list of dicts maps as the same rows in a JSONL file do (one function, `datasets.record_from`): a dotted
    answer field reads inside a nested dict (verl's `reward_model.ground_truth`), a `messages` list stands in for a
    missing prompt, an id is written as text as `as_text` writes it (7.0 -> "7"). Mutations: memory.py's own mapping
    (plain `row.get`, no messages_field, `str(id)`) gives answer None, a missing prompt, and id "7.0"."""
    from reasonrl.tasks.datasets import load_jsonl
    from reasonrl.tasks.memory import records_from

    cfg = reasonrl.load_config(overrides={"data.answer_field": "reward_model.ground_truth"})
    rows = [{"prompt": "What is 1 + 1?", "reward_model": {"ground_truth": 2}, "id": 7.0},
            {"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}],
             "reward_model": {"ground_truth": "4"}, "id": "b"}]
    records = records_from(rows, cfg.data, require=("prompt", "answer"), where="train data")
    assert records[0]["answer"] == "2" and records[0]["id"] == "7" and records[0]["response"] is None
    assert records[1]["prompt"] == "What is 2 + 2?" and records[1]["response"] == "4"
    assert records[1]["prompt_messages"] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert records[1]["answer"] == "4"
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert records == load_jsonl(path, answer_field="reward_model.ground_truth", messages_field="messages",
                                 require=("prompt", "answer"))
    with pytest.raises(UserError, match=r"^train data\[0\]: missing required field 'response'$"):
        records_from(rows, cfg.data, require=("prompt", "answer", "response"), where="train data")


@pytest.mark.parametrize("rows, needle", [
    ({"prompt": ["What is 1 + 1?"], "answer": ["2"]}, "got dict (a dict of columns? datasets.Dataset.from_dict"),
    ("What is 1 + 1?", "got str"),
])
def test_rows_that_are_not_a_list_of_dicts_are_one_line(rows, needle):
    # a dict of columns has a len() and raises KeyError on rows[0]: it escaped as a traceback (TypeError only was
    # caught). Mutation: dropping the Mapping check -> KeyError.
    from reasonrl.tasks.memory import records_from

    with pytest.raises(UserError) as e:
        records_from(rows, reasonrl.load_config().data, require=("prompt", "answer"), where="train data")
    assert str(e.value).startswith("train data: expected a list of dicts or a datasets.Dataset, ") and needle in str(
        e.value) and "\n" not in str(e.value)


def test_a_pandas_dataframe_is_one_line():
    # `df[0]` looks up a column: a KeyError, caught as a non-sequence. Mutation: catching TypeError only.
    import pandas as pd

    from reasonrl.tasks.memory import records_from

    df = pd.DataFrame({"prompt": ["What is 1 + 1?"], "answer": ["2"]})
    with pytest.raises(UserError, match=r"^train data: expected a list of dicts or a datasets.Dataset, got "
                                        r"DataFrame$"):
        records_from(df, reasonrl.load_config().data, require=("prompt", "answer"), where="train data")


def test_a_filtered_dataset_is_checked_on_the_rows_it_keeps():
    """`filter` / `select` / `shuffle` give a Dataset an indices mapping over its table: the schema checks read the
    rows the Dataset holds, not the table under it. Mutation: reading `ds.data` without flattening the indices
    reports the filtered-out null prompt (row 0), and names the wrong row of a selection."""
    import datasets

    from reasonrl.tasks.memory import records_from

    cfg = reasonrl.load_config()
    ds = datasets.Dataset.from_list([{"prompt": None, "answer": "0"}, {"prompt": "What is 1 + 1?", "answer": "2"},
                                     {"prompt": "What is 2 + 2?", "answer": "4"}])
    kept = ds.filter(lambda row: row["prompt"] is not None)
    records = records_from(kept, cfg.data, require=("prompt", "answer"), where="train data")
    assert [(r["prompt"], r["answer"], r["id"]) for r in records] == [("What is 1 + 1?", "2", "train data:0"),
                                                                    ("What is 2 + 2?", "4", "train data:1")]
    with pytest.raises(UserError, match=r"^train data: row 1: column 'prompt' is missing \(null\)$"):
        records_from(ds.select([2, 0]), cfg.data, require=("prompt", "answer"), where="train data")


def test_a_null_id_in_a_table_is_a_row_without_one():
    # every row of a table has every column; a null id takes the default, as the table reader did before it
    # shared the JSONL mapping (which refuses a line's explicit "id": null). Mutation: not dropping the null id ->
    # "field 'id' must be a string or a number, got NoneType".
    import datasets

    from reasonrl.tasks.memory import records_from

    ds = datasets.Dataset.from_list([{"prompt": "p", "answer": "1", "id": None}, {"prompt": "q", "answer": "2",
                                                                                 "id": "x"}])
    records = records_from(ds, reasonrl.load_config().data, require=("prompt", "answer"), where="train data")
    assert [r["id"] for r in records] == ["train data:0", "x"]


def test_a_datasets_dataset_is_read_as_a_table():
    """A `datasets.Dataset` passed to the API goes through the table reader (`hf_data.dataset_records`): lazy
    records, the schema checked up front (a missing column is one line naming it), a `messages` column as chat."""
    import datasets

    from reasonrl.errors import UserError
    from reasonrl.tasks.hf_data import Records
    from reasonrl.tasks.memory import records_from

    cfg = reasonrl.load_config()
    ds = datasets.Dataset.from_list([{"messages": [{"role": "user", "content": "What is 3 + 4?"}], "answer": "7"}])
    records = records_from(ds, cfg.data, require=("prompt", "answer"), where="train data")
    assert isinstance(records, Records) and records[0]["prompt"] == "What is 3 + 4?"
    assert records[0]["prompt_messages"] == [{"role": "user", "content": "What is 3 + 4?"}]
    with pytest.raises(UserError, match="train data: no column 'answer'"):
        records_from(ds.remove_columns("answer"), cfg.data, require=("prompt", "answer"), where="train data")


def test_a_dataset_from_the_api_stays_memory_mapped():
    """A `datasets.Dataset` passed as train data is read lazily (`hf_data.Records`), as a file source is, not made a
    list of every record at load time. Mutation: slicing with [:None] -> a list."""
    import datasets

    from reasonrl.tasks.hf_data import Records
    from reasonrl.tasks.sources import load_split

    ds = datasets.Dataset.from_list([{"prompt": f"p{i}", "answer": str(i)} for i in range(3)])
    data = reasonrl.load_config().data
    assert isinstance(load_split(data, "train", records=ds), Records)
    assert [r["prompt"] for r in load_split(data, "train", records=ds, num=2)] == ["p0", "p1"]
