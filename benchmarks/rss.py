"""Peak resident memory of a stretch of code, for the benchmarks' tables (Linux: /proc/self)."""

from __future__ import annotations


def peak_rss_reset() -> int:
    """Reset the process's peak resident memory (`clear_refs`) and return the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kb("VmRSS") * 1024


def peak_rss_since(base: int) -> int:
    """Bytes of peak resident memory above `base` since the last `peak_rss_reset`."""
    return max(0, _status_kb("VmHWM") * 1024 - base)


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
