"""One rank of the 2-process tracker test: every rank runs the tracker calls a trainer makes (check, start behind
MetricsLog, log, close); only rank 0 may write tracker output."""

from __future__ import annotations

import os

from reasonrl import dist
from reasonrl.config import load_config
from reasonrl.train import trackers
from reasonrl.train.logging import MetricsLog


def run(rank: int, world: int, port: int, run_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    dist.init("gloo")
    try:
        cfg = load_config(None, ["--log.report_to=tensorboard,mlflow", f"--log.run_dir={run_dir}"])
        trackers.check(cfg)
        log = MetricsLog(run_dir, trackers=trackers.start(cfg, run_dir, 0))
        for step in (1, 2, 3):
            log.log({"step": step, "loss": 1.0 / step})
        log.close()
    finally:
        dist.destroy()
