"""Run-directory logging: `metrics.jsonl` (one line per step), resumable by truncation."""

from __future__ import annotations

import json
import math
from pathlib import Path

from reasonrl import dist


class MetricsLog:
    """Appends one JSON object per logged step to `run_dir/metrics.jsonl` (main process only)."""

    def __init__(self, run_dir: str | Path, *, resume_step: int = 0):
        self.path = Path(run_dir) / "metrics.jsonl"
        # A resumed run replays the steps after its checkpoint: drop their old lines. A fresh run (step 0)
        # keeps nothing, not even an earlier run's step-0 evaluation.
        old = read_metrics(self.path) if resume_step > 0 else []
        kept = [line for line in old if line.get("step", 0) <= resume_step]
        # the last record logged (on every process); a resumed run starts from its checkpoint's last line, so a
        # finished run resumed sees its final evaluation there and does not log it twice
        self.last: dict = kept[-1] if kept else {}
        if dist.is_main():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            tmp.replace(self.path)

    def log(self, record: dict) -> None:
        self.last = record
        if not dist.is_main():
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
