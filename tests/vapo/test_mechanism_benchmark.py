"""benchmarks/vapo_mechanism.py --quick end to end: the JSON carries the claims with their intervals and verdicts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # about 15 s of CPU, more on a loaded machine
def test_quick_run_writes_the_claims(tmp_path):
    out = tmp_path / "mech.json"
    proc = subprocess.run([sys.executable, "benchmarks/vapo_mechanism.py", "--quick", "--out", str(out),
                           "--work-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    claims = result["claims"]
    assert len(claims) >= 3
    for c in claims:
        assert {"paper", "claim", "ours", "paper_value", "ci_low", "ci_high", "verdict"} <= set(c)
        assert c["ci_low"] <= c["ci_high"] and c["num_pairs"] == 3
    # the three effects the chain is built to show come out in the expected direction
    a, _, b, no_decay, c_var = (c["verdict"] for c in claims[:5])
    assert claims[0]["claim"].startswith("(a)") and claims[2]["claim"].startswith("(b)")
    assert "does not" in claims[3]["claim"] and "variance than lambda 1 on long" in claims[4]["claim"]
    assert a == b == no_decay == c_var == "reproduced"
    assert (tmp_path / "vapo_mechanism.png").is_file()
    assert {r["length"] for r in result["rows"]} == {16, 64, 512}
