"""`reasonrl eval --reward KIND` (repeatable): every sample scored by the reward, the mean reward and each kind's mean
in the summary beside accuracy; a reward that raises during evaluation is one line and exit 1."""

from __future__ import annotations

import json

import pytest

REWARDS_PY = '''
def digits(prompts, completions, **columns):
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]

def unit_len(completions, unit, **kw):  # reads an extra JSONL field: its own record's
    return [float(len(u)) for u in unit]

def unit_check(completions, unit, **kw):  # reads an extra JSONL field
    if "boom" in unit:
        raise KeyError("no unit")
    return [1.0 if u in c else 0.0 for c, u in zip(completions, unit)]
'''


def _digits(text: str) -> float:
    return sum(ch.isdigit() for ch in text) / max(1, len(text))


@pytest.fixture(scope="module")
def model_dir(micro_model_dir):
    return micro_model_dir


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "rewards.py").write_text(REWARDS_PY)
    lines = [{"prompt": f"Ana has {i} pens. She buys 1 more. How many pens does Ana have now?", "answer": str(i + 1),
              "unit": unit} for i, unit in enumerate(["pens", "apples", "coins"])]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cli(capsys, *argv) -> tuple[int, str]:
    from reasonrl.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err


def _eval(capsys, model_dir, out, *extra) -> tuple[int, str]:
    # 2 samples of 2 problems per sampling call: chunks of 2 and 1 problems, scored chunk by chunk
    return _cli(capsys, "eval", "--model", model_dir, "--data", "data.jsonl", "--num-samples", "2", "--out", out,
                "--rollout.max_new_tokens=12", "--rollout.batch_size=4", "--log.progress=false", *extra)


def test_eval_reports_the_mean_reward_and_each_kind_beside_accuracy(workdir, model_dir, capsys):
    code, err = _eval(capsys, model_dir, workdir / "out", "--reward", "verifier", "--reward", "rewards.py:digits",
                      "--reward", "rewards.py:unit_len")
    assert code == 0, err
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    samples = [json.loads(x) for x in (workdir / "out" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and "mean@n" in summary
    unit = {json.loads(x)["prompt"]: json.loads(x)["unit"] for x in (workdir / "data.jsonl").read_text().splitlines()}
    for s in samples:  # verifier +1 / -1 (wrong or no answer) + the digit fraction of the text + its record's unit
        want = (1.0 if s["correct"] else -1.0) + _digits(s["response"]) + len(unit[s["prompt"]])
        assert s["reward"] == pytest.approx(want, abs=1e-6)
    assert summary["reward"] == pytest.approx(sum(s["reward"] for s in samples) / 6)
    # each kind's mean over every chunk: digits from the texts, unit lengths (4 + 6 + 5) / 3
    assert summary["reward/digits"] == pytest.approx(sum(_digits(s["response"]) for s in samples) / 6, abs=1e-6)
    assert summary["reward/unit_len"] == pytest.approx(5.0)
    assert summary["reward"] == pytest.approx(summary["reward/verifier"] + summary["reward/digits"] + 5.0, abs=1e-6)
    code, err = _eval(capsys, model_dir, workdir / "one", "--reward", "rewards.py:unit_len")  # one kind: reward.kind
    assert code == 0, err
    assert json.loads((workdir / "one" / "summary.json").read_text())["reward"] == pytest.approx(5.0)
    code, err = _eval(capsys, model_dir, workdir / "plain")
    assert code == 0, err
    assert not any(k.startswith("reward") for k in json.loads((workdir / "plain" / "summary.json").read_text()))


def test_a_reward_that_raises_during_eval_is_one_line_and_its_frames(workdir, model_dir, capsys):
    data = workdir / "data.jsonl"
    lines = data.read_text().splitlines()
    data.write_text("\n".join([*lines, lines[0].replace('"pens"}', '"boom"}')]) + "\n")  # the 4th record raises
    code, err = _eval(capsys, model_dir, workdir / "out", "--reward", "rewards.py:unit_check")
    assert code == 1, err
    first, *frames = err.splitlines()
    assert first == "reasonrl: error: reward 'rewards.py:unit_check' raised during evaluation: KeyError: 'no unit'"
    assert any("in unit_check" in f for f in frames) and not any("reasonrl/" in f for f in frames)
    assert not (workdir / "out" / "summary.json").exists()
