"""Shared fixtures: a tokenizer trained on a small synthetic corpus and a micro model (built once per session)."""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager

import pytest
import torch

torch.set_num_threads(1)  # predictable on 2-core machines where tests also start worker processes


@pytest.fixture(scope="session")
def world_tokenizer():
    from reasonrl.model.tokenizer import train_tokenizer
    from reasonrl.tasks import synthetic

    records = synthetic.generate(600, seed=0, difficulty=3, slip_fraction=0.2, alt_fraction=0.2)
    return train_tokenizer([r["prompt"] + "\n" + r["response"] for r in records])


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, world_tokenizer):
    out = tmp_path_factory.mktemp("tokenizer")
    world_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def free_port():
    """`free_port()`: a free localhost TCP port, for the rendezvous of the tests' torch.distributed processes."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory, world_tokenizer):
    """A saved micro model (HF directory with tokenizer), built once per session: read it, never write into it."""
    from reasonrl.model.tiny import build_model

    out = tmp_path_factory.mktemp("micro_model")
    build_model("micro", world_tokenizer).save_pretrained(out)
    world_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def run_forked():
    """`run_forked(fn, args, nprocs=, timeout_s=, what=)`: `fn(rank, *args)` in `nprocs` forked processes, waited
    for; a hang (collectives that do not pair up) fails the test after `timeout_s` instead of blocking for the
    process group's 30-minute timeout."""
    import torch.multiprocessing as mp

    def run(fn, args: tuple, *, nprocs: int, timeout_s: float, what: str) -> None:
        ctx = mp.start_processes(fn, args=args, nprocs=nprocs, start_method="fork", join=False)
        deadline = time.monotonic() + timeout_s
        while not ctx.join(timeout=2):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                pytest.fail(f"{what} did not finish in {timeout_s} s")

    return run


class Crash(Exception):
    """The crash `crash_at_call` injects."""


@pytest.fixture
def crash_at_call(monkeypatch):
    """`with crash_at_call(module, "name", n): run()`: the n-th call of `module.name` raises `Crash` (a crash in the
    middle of a run, after the checkpoints before it); the block must end in that crash, and the real function is
    back after it (for the resumed run)."""

    @contextmanager
    def crash(module, name: str, n: int):
        real, calls = getattr(module, name), {"n": 0}

        def crashing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                raise Crash()
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, crashing)
        try:
            with pytest.raises(Crash):
                yield
        finally:
            monkeypatch.setattr(module, name, real)

    return crash
