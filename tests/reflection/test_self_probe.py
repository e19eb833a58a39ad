"""Self-reflection probe (paper Alg. 2): the real CLI on two micro SFT checkpoints, each checkpoint fed its own CoTs,
and the empty-set error."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from reasonrl import cli
from reasonrl.reflection import probe, self_probe
from reasonrl.reflection.metrics import METRICS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """Two checkpoints (steps 1 and 4) of the micro preset from the `reasonrl sft` entry point, as in test_probe.py;
    this young, nearly every answer is wrong, so the commonly-wrong set is not empty."""
    out = tmp_path_factory.mktemp("sft_run")
    assert cli.run(["sft", "--config", str(REPO / "configs/sft_tiny.toml"), "--model.preset=micro",
                    "--train.steps=4", "--train.log_checkpoints=2", "--train.save_every=0", "--data.num_train=64",
                    "--train.eval_examples=2", f"--log.run_dir={out}"]) == 0
    return out


@pytest.fixture
def fake_run(tmp_path) -> Path:
    """Two checkpoint dirs that pass `parse_checkpoints` (config.json, meta.json) but hold no weights."""
    for step in (1, 4):
        ckpt = tmp_path / "run" / "checkpoints" / f"step_{step:07d}"
        ckpt.mkdir(parents=True)
        (ckpt / "config.json").write_text("{}")
        (ckpt / "meta.json").write_text(json.dumps({"step": step, "params": 1000, "tokens_seen": 100 * step}))
    return tmp_path / "run"


def _fake_results(right: dict[str, set[str]]):
    """A stand-in generation step: checkpoint `name` writes `cot <name> <id>` and is right on `right[name]`."""
    def checkpoint_results(ckpt, questions, *, data, max_new_tokens, seed=0):
        return [{"id": q["id"], "question": q["question"], "cot": f"cot {ckpt.name} {q['id']}",
                 "correct": q["id"] in right.get(ckpt.name, set()), "gold_answer": q["gold_answer"], "answer": "0"}
                for q in questions]
    return checkpoint_results


def test_self_probe_cli_on_checkpoint_series(run_dir, tmp_path, capsys):
    out = tmp_path / "self"
    assert cli.run(["reflection", "--probe", "self", "--checkpoints", str(run_dir), "--out", str(out),
                    "--num-items", "8", "--max-new-tokens", "8"]) == 0
    self_set = [json.loads(line) for line in (out / "self_set.jsonl").read_text().splitlines()]
    ckpts = list(dict.fromkeys(r["checkpoint"] for r in self_set))
    assert [Path(c).name for c in ckpts] == ["step_0000001", "step_0000004"]
    ids = [[r["id"] for r in self_set if r["checkpoint"] == c] for c in ckpts]
    assert ids[0] and ids[0] == ids[1]  # the same commonly-wrong questions for both checkpoints
    assert all(r["perturbation"] == "self" and "/" not in r["id"] for r in self_set)
    rows = [json.loads(line) for line in (out / "table.jsonl").read_text().splitlines()]
    assert [(r["step"], r["trigger"], r["probe"]) for r in rows] == [
        (1, "none", "self"), (1, "Wait,", "self"), (4, "none", "self"), (4, "Wait,", "self")]
    for r in rows:
        assert r["num_records"] == len(ids[0])  # one seed: the set is fixed and decoding greedy
        assert r["accuracy"] == r["explicit_reflection_accuracy"] + r["implicit_reflection_accuracy"]
        assert all(0.0 <= r[m] <= 1.0 for m in METRICS)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 * len(ids[0])
    assert {(s["probe"], s["perturbation"], s["seed"]) for s in samples} == {("self", "self", 0)}
    assert set(json.loads((out / "correlations.json").read_text())) == {"none", "Wait,"}
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(f"{m}.png" for m in METRICS)
    assert "reflection probe (self)" in capsys.readouterr().out


def test_each_checkpoint_is_fed_its_own_wrong_cots(fake_run, tmp_path, monkeypatch):
    # step 1 is right on the first question, step 4 on the second: only the others are wrong for both
    questions = self_probe.base_questions(probe.probe_items("synthetic", 30, seed=0))
    assert len(questions) >= 4
    first, second = questions[0]["id"], questions[1]["id"]
    monkeypatch.setattr(self_probe, "checkpoint_results",
                        _fake_results({"step_0000001": {first}, "step_0000004": {second}}))
    monkeypatch.setattr(probe, "load_checkpoint", lambda ckpt: (ckpt.name, None))
    fed: list[tuple[str, list[dict]]] = []

    def probe_checkpoint(model, tokenizer, items, *, data, trigger, seed, max_new_tokens, classifier):
        fed.append((model, list(items)))
        return [{"id": it["id"], "seed": seed, "trigger": probe.trigger_name(trigger), "perturbation": "self",
                 "correct": False, "reflective": False, "continuation": ""} for it in items]

    monkeypatch.setattr(probe, "probe_checkpoint", probe_checkpoint)
    probe.reflection_command(str(fake_run), "synthetic", str(tmp_path / "out"), probe="self", num_items=30,
                             triggers=("Wait,",), quiet=True)
    assert [name for name, _ in fed] == ["step_0000001", "step_0000004"]
    common = [q["id"] for q in questions[2:]]
    for name, items in fed:
        assert [it["id"] for it in items] == common
        assert [it["adversarial_cot"] for it in items] == [f"cot {name} {qid}" for qid in common]


def test_answer_questions_grades_and_cuts_own_cots(monkeypatch):
    questions = [{"id": "a", "question": "Q1", "gold_answer": "18"}, {"id": "b", "question": "Q2", "gold_answer": "5"}]
    texts = [" 9 * 2 = 18. The answer is \\boxed{18}.", " 2 + 2 = 4.  The answer is \\boxed{4}."]
    seen = {}

    def greedy_texts(model, tokenizer, prompts, *, data, seed, max_new_tokens):
        seen["prompts"] = prompts
        return texts

    monkeypatch.setattr(self_probe, "greedy_texts", greedy_texts)
    tokenizer = SimpleNamespace(chat_template=None)  # plain prompt: the question itself
    records = self_probe.answer_questions(None, tokenizer, questions, data="synthetic", max_new_tokens=8)
    assert seen["prompts"] == ["Q1", "Q2"]
    assert records == [
        {"id": "a", "question": "Q1", "cot": " 9 * 2 = 18.", "correct": True, "gold_answer": "18", "answer": "18"},
        {"id": "b", "question": "Q2", "cot": " 2 + 2 = 4.", "correct": False, "gold_answer": "5", "answer": "4"}]
    assert self_probe.own_cot("gsm8k", "3 + 4 = 7\n#### 7</s>junk") == "3 + 4 = 7"


def test_empty_common_wrong_set_exits_2(fake_run, tmp_path, monkeypatch, capsys):
    questions = self_probe.base_questions(probe.probe_items("synthetic", 8, seed=0))
    monkeypatch.setattr(self_probe, "checkpoint_results",
                        _fake_results({"step_0000004": {q["id"] for q in questions}}))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reflection", "--probe", "self", "--checkpoints", str(fake_run), "--out", str(tmp_path / "out"),
                  "--num-items", "8"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("reasonrl: error: --probe self: none of the") and "step_0000004: 0" in err
    assert not (tmp_path / "out").exists()
