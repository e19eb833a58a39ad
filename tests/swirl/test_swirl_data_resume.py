"""`reasonrl swirl-data` onto an existing output: `--resume` continues it only with the settings recorded in
`settings.json`; `--overwrite` replaces it; without either it is refused."""

from __future__ import annotations

import json

import pytest

from reasonrl import cli
from reasonrl.errors import UserError

ARGS = ["swirl-data", "--source", "scripted", "--swirl.kb_people=40", "--swirl.hotpotqa=false", "--num-questions",
        "3", "--num-per-question", "2", "--log.progress=false"]


def _ids(out) -> list[str]:
    return [json.loads(x)["id"] for x in (out / "trajectories.jsonl").read_text().splitlines()]


def test_resume_continues_with_the_same_settings_and_overwrite_replaces(tmp_path):
    out = tmp_path / "data"
    assert cli.run([*ARGS, "--out", str(out)]) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["mistake_rate"] == 0.3 and settings["swirl.kb_people"] == 40 and settings["source"] == "scripted"
    ids = _ids(out)
    assert len(ids) == 6

    lines = (out / "trajectories.jsonl").read_text().splitlines()
    (out / "trajectories.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])  # a crash mid-write
    with pytest.raises(UserError, match="already holds output: pass --resume"):
        cli.run([*ARGS, "--out", str(out)])
    assert cli.run([*ARGS, "--out", str(out), "--resume"]) == 0
    assert sorted(_ids(out)) == sorted(ids)  # the torn line is dropped and the 4 missing trajectories written
    labelled = [json.loads(x) for x in (out / "labelled.jsonl").read_text().splitlines()]
    assert sorted(t["id"] for t in labelled) == sorted(ids)  # derived files follow the whole set

    assert cli.run([*ARGS, "--out", str(out), "--overwrite", "--mistake-rate", "1.0"]) == 0
    assert json.loads((out / "settings.json").read_text()) == {**settings, "mistake_rate": 1.0}
    labelled = [json.loads(x) for x in (out / "labelled.jsonl").read_text().splitlines()]
    assert len(labelled) == 6 and all(t["outcome"] == 0.0 for t in labelled)  # every step a mistake: none right


def test_overwrite_removes_the_old_summary_with_the_old_data(tmp_path, monkeypatch):
    """`--overwrite` removes every file the command writes, summary.json included, once the checks pass: a run that
    then dies leaves no summary of the old data beside none of it. Mutation: summary.json not among the owned files
    -> the old summary survives."""
    from reasonrl.swirl import data

    out = tmp_path / "data"
    assert cli.run([*ARGS, "--out", str(out)]) == 0
    assert (out / "summary.json").is_file()

    def crash(*args, **kwargs):
        raise RuntimeError("died while generating")

    monkeypatch.setattr(data, "generate_trajectories", crash)
    with pytest.raises(RuntimeError, match="died while generating"):
        cli.run([*ARGS, "--out", str(out), "--overwrite"])
    assert not (out / "summary.json").exists() and not (out / "labelled.jsonl").exists()
