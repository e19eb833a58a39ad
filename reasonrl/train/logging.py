"""Run-directory logging: `metrics.jsonl` (one line per step), resumable by truncation, and the trackers of
`log.report_to` behind it (`trackers.py`), which get the same numbers."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from reasonrl import dist
from reasonrl.errors import UserError
from reasonrl.outputs import write_jsonl


class MetricsLog:
    """Appends one JSON object per logged step to `run_dir/metrics.jsonl` (main process only), and sends its
    numeric values (`scalars`) to `trackers` (started by `trackers.start`: on the main process only)."""

    def __init__(self, run_dir: str | Path, *, resume_step: int = 0, trackers: Sequence = ()):
        self.path = Path(run_dir) / "metrics.jsonl"
        # A resumed run replays the steps after its checkpoint: drop their old lines. A fresh run (step 0)
        # keeps nothing, not even an earlier run's step-0 evaluation.
        old = read_metrics(self.path) if resume_step > 0 else []
        kept = [line for line in old if line.get("step", 0) <= resume_step]
        # the last record logged (on every process); a resumed run starts from its checkpoint's last line, so a
        # finished run resumed sees its final evaluation there and does not log it twice
        self.last: dict = kept[-1] if kept else {}
        self.trackers = list(trackers)
        if dist.is_main():
            write_jsonl(self.path, kept)
        for tracker in self.trackers:
            if tracker.new:  # first named on this resume: it gets the history so far
                for line in kept:
                    self._send(tracker, line)

    def log(self, record: dict) -> None:
        self.last = record
        if not dist.is_main():
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")
        for tracker in self.trackers:
            self._send(tracker, record)

    def close(self) -> None:
        """Finish the trackers (the run reached its end)."""
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []

    @staticmethod
    def _send(tracker, record: dict) -> None:
        values = scalars(record)
        if values:
            tracker.log(record["step"], values)


def scalars(record: dict) -> dict[str, float]:
    """The values trackers get from a metrics record: finite numbers (not booleans), without `step`."""
    return {k: float(v) for k, v in record.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl ([] without one). A torn last line (a crash mid-write, no newline yet) is left
    out; any other line that is not a JSON object is one error line naming the file and line."""
    p = Path(path)
    if not p.is_file():
        return []
    text = p.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if text and not text.endswith("\n"):
        lines = lines[:-1]
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{p}:{i}: not a JSON line ({e.msg}); the run's metrics log is damaged") from None
        if not isinstance(record, dict):
            raise UserError(f"{p}:{i}: expected a JSON object, got {type(record).__name__}")
        out.append(record)
    return out
