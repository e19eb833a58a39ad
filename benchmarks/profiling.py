"""What part of a run is irreducible arithmetic: the self CPU time of the matrix-multiply and attention kernels.

Used by rl_step.py and rollout.py (`--kernels`) to put a ceiling on a speed ratio: a peer that takes T seconds can be
beaten at most T / kernel_seconds times by any implementation that does the same arithmetic with these kernels
at the speed they reach on this machine, even if everything else (norms, sampling, Python, the optimizer) took
no time. Measured with torch.profiler, whose overhead lands on the many small operators, not on these.
"""

from __future__ import annotations

from collections.abc import Callable

KERNELS = (
    "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
    "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
)


def kernel_seconds(run: Callable[[], object]) -> float:
    """Self CPU seconds of `KERNELS` during one call of `run()`."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return round(sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in KERNELS) / 1e6, 4)
