"""`dist.main_decides` / `dist.first_error` on two gloo ranks: rank 0 deciding (a run directory, the trackers) and
failing in any way ends every rank, with the same UserError or a RuntimeError naming rank 0's failure, instead of
leaving rank 1 in a broadcast until the collective times out. The ranks are forked; a hang fails after a timeout."""

from __future__ import annotations

import json
import os

import pytest
import torch

from reasonrl import dist
from reasonrl.errors import UserError

WORLD, TIMEOUT_S = 2, 120


def _disk_gone(*args, **kwargs):
    raise OSError("disk gone\nsecond line")


def _refused(*args, **kwargs):
    raise UserError("log.run_dir x: refused")


def _outcome(fn) -> list:
    try:
        return ["ok", fn()]
    except Exception as e:  # what each rank saw: its type and message
        return [type(e).__name__, str(e)]


def _worker(rank: int, port: int, out_dir: str) -> None:
    from reasonrl.config import load_config
    from reasonrl.train import rundir, trackers

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init("gloo")
    cfg = load_config(None, ['--log.report_to=["tensorboard"]'])
    seen = {}
    try:
        seen["value"] = _outcome(lambda: dist.main_decides(lambda: 41 + 1))
        seen["user"] = _outcome(lambda: dist.main_decides(_refused))
        rundir._check, rundir._claim = _disk_gone, _disk_gone  # rank 0 fails as no user input does
        trackers._check, trackers._start = _disk_gone, _disk_gone
        seen["check"] = _outcome(lambda: rundir.check(cfg))
        seen["claim"] = _outcome(lambda: rundir.claim(cfg, 0))
        seen["trackers_check"] = _outcome(lambda: trackers.check(cfg))
        seen["trackers_start"] = _outcome(lambda: trackers.start(cfg, cfg.log.run_dir, 0))
        seen["first_error"] = _outcome(lambda: dist.first_error(None if rank == 0 else f"rank {rank} failed"))
        seen["no_error"] = _outcome(lambda: dist.first_error(None))
    finally:
        dist.destroy()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(seen, f)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, free_port, run_forked) -> list[dict]:
    out = tmp_path_factory.mktemp("main_decides")
    run_forked(_worker, (free_port(), str(out)), nprocs=WORLD, timeout_s=TIMEOUT_S, what="the 2-process scenarios")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_rank_0_decides_and_every_rank_learns_the_outcome(ranks):
    r0, r1 = ranks
    assert r0["value"] == ["ok", 42] and r1["value"] == ["ok", None]  # the result is rank 0's
    assert r0["user"] == r1["user"] == ["UserError", "log.run_dir x: refused"]


@pytest.mark.parametrize("site", ["check", "claim", "trackers_check", "trackers_start"])
def test_another_exception_on_rank_0_ends_every_rank(ranks, site):
    r0, r1 = ranks
    assert r0[site] == ["OSError", "disk gone\nsecond line"]  # rank 0: its own exception, re-raised
    assert r1[site] == ["RuntimeError", "rank 0 failed (rank 1 stops with it): OSError: disk gone second line"]


def test_first_error_is_the_same_on_every_rank(ranks):
    assert ranks[0]["first_error"] == ranks[1]["first_error"] == ["ok", "rank 1 failed"]
    assert ranks[0]["no_error"] == ranks[1]["no_error"] == ["ok", None]
