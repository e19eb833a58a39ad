"""`reasonrl demo --quick`: every stage runs and writes its outputs (the full demo's numbers are in docs/results.md)."""

import math

from reasonrl.demo import run_demo


def test_demo_quick_runs_every_stage(tmp_path):
    rows = run_demo(tmp_path, quick=True)
    assert [r["stage"].split()[0] for r in rows] == ["world+tokenizer+model", "sft", "vapo"]
    for r in rows[1:]:
        assert 0.0 <= r["heldout_acc"] <= 1.0 and 0.0 <= r["greedy_acc"] <= 1.0 and r["seconds"] > 0
        assert not math.isnan(r["heldout_len"])
    for stage in ("sft", "vapo"):
        assert (tmp_path / stage / "final" / "model.safetensors").is_file()
        assert any((tmp_path / stage / "plots").iterdir())
    assert (tmp_path / "vapo" / "final").is_dir() and (tmp_path / "data" / "test.jsonl").is_file()
