"""The symbolic step's worker pool: math-verify (sympy) in persistent worker subprocesses with time limits.

A soft SIGALRM limit inside a worker ends slow Python code and keeps the worker; a hard limit in the caller (select
on the pipe) kills a worker stuck in C code. Workers are plain subprocesses, never multiprocessing, so this works
from threads and daemonic pool workers; a forked child starts its own pool. See `reasonrl.tasks.verify`.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HARD_GRACE = 1.0  # extra seconds before a worker stuck in C code is killed
STARTUP_TIMEOUT = 60.0  # importing sympy + math-verify in a fresh worker (slow on a loaded machine)
WORKER_MEMORY_BYTES = 2 << 30  # address-space cap of a symbolic worker


def check(pred: str, gold: str, timeout: float) -> bool | None:
    """math-verify equivalence of two guarded answers in a worker; None if it ran out of time or the worker failed."""
    return _POOL.run(pred, gold, timeout)


def _read_line(fd: int, buf: bytearray, deadline: float) -> bytes | None:
    """Next line from a pipe, or None once `deadline` (monotonic) passes; EOFError if the other end is gone."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while (nl := buf.find(b"\n")) < 0:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(max(1, int(left * 1000))):
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError("symbolic worker closed its pipe")
        buf += chunk
    line = bytes(buf[:nl])
    del buf[: nl + 1]
    return line


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = (
    f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); from reasonrl.tasks.verify_pool import _worker_main; "
    "_worker_main()"
)


class _Worker:
    """One symbolic worker subprocess speaking JSON lines: {pred, gold, soft} -> {equal: bool | null}."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.buf = bytearray()
        try:
            ready = _read_line(self.proc.stdout.fileno(), self.buf, time.monotonic() + STARTUP_TIMEOUT)
        except EOFError:
            ready = None
        if ready != b"ready":
            self.kill()
            raise RuntimeError(
                "symbolic answer-check worker did not start; check that `python -c 'import math_verify'` works"
            )

    def check(self, pred: str, gold: str, soft: float) -> bool | None:
        """Send one comparison; None if the worker reports a soft timeout. TimeoutError/EOFError/OSError: worker bad."""
        request = json.dumps({"pred": pred, "gold": gold, "soft": soft}) + "\n"
        self.proc.stdin.write(request.encode())
        self.proc.stdin.flush()
        line = _read_line(self.proc.stdout.fileno(), self.buf, time.monotonic() + soft + HARD_GRACE)
        if line is None:
            raise TimeoutError("symbolic worker exceeded its hard limit")
        return json.loads(line)["equal"]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()


class _WorkerPool:
    """Idle workers of this process; a busy caller (thread) that finds none starts its own."""

    max_idle = 4

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []

    def run(self, pred: str, gold: str, timeout: float) -> bool | None:
        with self.lock:
            worker = self.idle.pop() if self.idle else None
        worker = worker or _Worker()
        try:
            equal = worker.check(pred, gold, timeout)
        except (TimeoutError, EOFError, OSError, ValueError, KeyError):
            worker.kill()  # stuck in C code, crashed or garbled: never reuse it
            return None
        except BaseException:
            worker.kill()  # e.g. KeyboardInterrupt mid-request: its answer would be read by the next caller
            raise
        self._release(worker)
        return equal

    def _release(self, worker: _Worker) -> None:
        with self.lock:
            if len(self.idle) < self.max_idle:
                self.idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for worker in idle:
            worker.kill()


_POOL = _WorkerPool()
_INHERITED: list[_WorkerPool] = []  # a forked child must not talk to (or reap) its parent's workers


def _fresh_pool_after_fork() -> None:
    global _POOL
    _INHERITED.append(_POOL)
    _POOL = _WorkerPool()


os.register_at_fork(after_in_child=_fresh_pool_after_fork)
atexit.register(lambda: _POOL.close())


# ------------------------------------------------------------------------------------------------- inside the worker


class _SoftTimeout(BaseException):
    """Raised by SIGALRM inside the worker; a BaseException so math-verify's `except Exception` cannot swallow it."""


_ARMED = False


def _on_alarm(signum: int, frame: object) -> None:
    if _ARMED:
        raise _SoftTimeout


def _worker_check(pred: str, gold: str, soft: float) -> bool | None:
    """math-verify comparison under a SIGALRM limit (this runs on the worker's main thread)."""
    from math_verify import LatexExtractionConfig, parse
    from math_verify import verify as mv_verify

    latex_only = [LatexExtractionConfig()]  # never ExprExtractionConfig: it runs sympy's parse_expr, i.e. eval()

    global _ARMED
    _ARMED = True
    try:
        signal.setitimer(signal.ITIMER_REAL, max(soft, 1e-3))
        g = parse("\\boxed{" + gold + "}", extraction_config=latex_only, parsing_timeout=None)
        p = parse("\\boxed{" + pred + "}", extraction_config=latex_only, parsing_timeout=None)
        return bool(g) and bool(p) and bool(mv_verify(g, p, timeout_seconds=None))
    except _SoftTimeout:
        return None
    except Exception:  # sympy raising on odd input (RecursionError, MemoryError, ...) means "not shown equal"
        return False
    finally:
        _ARMED = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def _limit_memory() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = WORKER_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(hard, WORKER_MEMORY_BYTES)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _worker_main() -> None:
    """Serve comparisons on stdin/stdout until the parent closes the pipe or dies."""
    import logging

    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; we exit when it goes away
    signal.signal(signal.SIGALRM, _on_alarm)
    _limit_memory()
    out = os.fdopen(os.dup(1), "wb")  # the protocol pipe; stray prints (Python or C) go to stderr = /dev/null
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import math_verify  # noqa: F401  (import once, before saying ready)

    parent, buf = os.getppid(), bytearray()
    out.write(b"ready\n")
    out.flush()
    while True:
        try:
            line = _read_line(0, buf, time.monotonic() + 1.0)
        except EOFError:
            return
        if line is None:
            if os.getppid() != parent:
                return
            continue
        req = json.loads(line)
        out.write((json.dumps({"equal": _worker_check(req["pred"], req["gold"], req["soft"])}) + "\n").encode())
        out.flush()
