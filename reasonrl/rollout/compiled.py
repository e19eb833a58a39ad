"""Graph capture of the decode step: `torch.compile` over `fast_step.decode_logits` (`SamplingParams.compile`).

Why: at the sizes this project trains on CPU, a decode step is ~100 small operators whose dispatch costs about
as much as their arithmetic (docs/benchmarks.md); inductor fuses the elementwise work (norms, rotary, residuals,
SiLU) into a few C++ loops and calls the matmuls and attention directly.

Shapes: the batch and the number of filled cache columns change during a run (rows are dropped as they finish,
every step adds a column), and the prompt width changes between runs. Those dimensions are marked dynamic, so
one graph serves every step of every run of a model shape, and nothing recompiles when rows are dropped. The
compiled function is built once per process (`compiled_step`); its graphs are cached by dynamo in memory
(keyed by the weights' shapes and dtypes, so a second model of the same shape reuses them) and by inductor on
disk (`TORCHINDUCTOR_CACHE_DIR`, default under /tmp), so a new process skips most of the compile.
"""

from __future__ import annotations

import torch

from reasonrl.rollout.fast_step import StepFn, decode_logits

_COMPILED: dict[tuple, StepFn] = {}


def compiled_step(backend="inductor", mode: str | None = None) -> StepFn:
    """`decode_logits` under torch.compile (`backend`, `mode` as torch.compile takes them), dynamic in batch and
    cache width. A batch of one row gets a graph of its own (dynamo specialises sizes 0 and 1)."""
    key = (backend, mode)
    if key not in _COMPILED:
        fn = torch.compile(decode_logits, backend=backend, mode=mode, fullgraph=True)

        def step(tokens, mask, cos, sin, column, keys, values, weights, shape):
            for t, dims in ((tokens, (0,)), (mask, (0, 1)), (cos, (0,)), (sin, (0,))):
                for d in dims:
                    torch._dynamo.maybe_mark_dynamic(t, d)
            for buf in (*keys, *values):
                torch._dynamo.maybe_mark_dynamic(buf, 0)
                torch._dynamo.maybe_mark_dynamic(buf, 2)
            return fn(tokens, mask, cos, sin, column, keys, values, weights, shape)

        _COMPILED[key] = step
    return _COMPILED[key]
