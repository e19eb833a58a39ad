"""`reward.workers`: a plain reward function in a pool of worker processes, one call per completion, each call given
`reward.timeout_s`; a call that runs over it has its worker stopped (the pool is replaced), so a hung function cannot
hang the run.

Processes are spawned, not forked: a fork of a process with torch threads (or CUDA) is not safe. Each worker loads
the function once when it starts (`_init`), from the same spec the run was given (`user_code.load_object`), and
the pool waits until every worker has, so start-up time never counts against a call's timeout.

Calls run in waves of `workers` (one per worker, all starting together); a wave ends when every call has answered
or the timeout has passed. The standard library's pools cannot stop one running call, so a timed-out call costs a
new pool (`multiprocessing.Pool.terminate` is public; `concurrent.futures` offers no way to stop a worker).

Light on purpose: the workers import this module and `user_code`, not torch.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import weakref
from typing import Any

from reasonrl.errors import UserError, one_line
from reasonrl.reward.user_code import call_unit, load_object

STARTUP_TIMEOUT_S = 120.0  # a worker's start: a Python process importing the function's module (torch, maybe)
_FN: Any = None  # in a worker: the function it runs


def _init(spec: tuple, ready) -> None:
    global _FN
    try:
        _FN = load_object(spec)
        ready.put(None)
    except BaseException as e:  # report instead of dying: a pool would restart a dying worker forever
        ready.put(f"{type(e).__name__}: {one_line(str(e))}")


def _run(kwargs: dict) -> tuple:
    return call_unit(_FN, kwargs)


def _stop(pool) -> None:
    pool.terminate()
    pool.join()


class WorkerPool:
    """`workers` spawned processes running the function of `spec`; `run(calls)` -> one `call_unit` outcome per call
    (a timed-out one is `("error", "TimeoutError", ..., "")`)."""

    def __init__(self, spec: tuple, *, workers: int, timeout_s: float, label: str):
        self.spec, self.workers, self.timeout_s, self.label = spec, workers, timeout_s, label
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        self._pool = ctx.Pool(self.workers, initializer=_init, initargs=(self.spec, ready))
        self._finalizer = weakref.finalize(self, _stop, self._pool)  # no worker outlives its pool object
        for _ in range(self.workers):
            try:
                problem = ready.get(timeout=STARTUP_TIMEOUT_S)
            except queue.Empty:
                problem = f"no worker had started after {STARTUP_TIMEOUT_S:.0f} s"
            if problem is not None:
                self.close()
                raise UserError(f"reward {self.label}: reward.workers could not start it: {problem}")

    def run(self, calls: list[dict]) -> list[tuple]:
        out: list[tuple] = []
        for start in range(0, len(calls), self.workers):
            pending = [self._pool.apply_async(_run, (kwargs,)) for kwargs in calls[start : start + self.workers]]
            deadline = time.monotonic() + self.timeout_s
            hung = False
            for result in pending:
                try:
                    out.append(result.get(timeout=max(0.0, deadline - time.monotonic())))
                except multiprocessing.TimeoutError:
                    hung = True
                    out.append(("error", "TimeoutError", f"no answer within reward.timeout_s = {self.timeout_s} s "
                                                         f"(its worker was stopped)", ""))
                except Exception as e:  # e.g. a value that cannot be sent back from the worker
                    out.append(("error", type(e).__name__, one_line(str(e)), ""))
            if hung:
                self.close()
                self.restarts += 1
                self._start()
        return out

    def close(self) -> None:
        self._finalizer()
