"""Dion: one warm-started power-iteration step with error feedback instead of Muon's Newton-Schulz.

Ahn, Xu, Abreu, Langford, Fan, Magakyan, Sharma, Zhan, "Dion: Distributed Orthonormalized Updates",
arXiv 2504.05295 v3 (2025), Algorithm 1. Per matrix X (m x n = fan_out x fan_in), momentum M, right factor Q:

    B = M + G                                  accumulate (no decay here; error feedback decays)
    A = B, or B^T when transposed              orthonormalised factor on the long side (see `dion_transposed`)
    P = Orthonormalize(A Q)                    (long x r), QR / Cholesky-QR / randomised Cholesky-QR in fp32
    R = A^T P                                  (short x r)
    M = B - (1 - mu) P R^T                     error feedback (in B's orientation)
    Q = ColumnNormalize(R)                     R_j / (||R_j|| + eps), the warm start for the next step
    X = (1 - lr wd) X - lr sqrt(m / n) P Q^T   decoupled weight decay, then the update

An all-zero A Q (in particular an all-zero B) gives P = 0: X changes only by weight decay and Q is kept.

Layout: the pure functions `dion_project` (B and A Q), `dion_orthonormalize` and `dion_finish` (R, error
feedback, Q, X) are one step split where the distributed modes communicate; `dion_update` composes them for
one device. `Dion` holds the state and runs the three modes:

* one process: plain tensors, no `process_group`;
* data parallel (`process_group=...`, plain tensors): ranks do NOT all-reduce gradients; each keeps its own
  momentum, P (before orthonormalisation) and R are averaged over ranks. Both are linear in B, so the mean of
  the rank momenta follows the one-process recursion on the averaged gradient and weights stay identical.
  Matrices where (m + n) r >= m n, and all AdamW / Lion parameters, get their gradients all-reduced instead;
* FSDP2 (`fully_shard` DTensor parameters, Shard(0) on a 1-D mesh): every matrix runs transposed so Q and X
  share the row sharding; the partial sums A_local Q_local (n x r) are reduce-scattered, orthonormalised by one
  rank each and all-gathered, and only the r column sums of squares of R are all-reduced. The full m x n
  matrix is never gathered.

Precision: momentum and Q in `state_dtype` (fp32 default, bf16 allowed); A Q and A^T P in that dtype;
orthonormalisation, column norms and the update factors in fp32, always outside autocast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.distributed import ProcessGroup

from reasonrl.optim import comm
from reasonrl.optim.groups import check_group_algorithm, check_group_keys, scalar_step

QRMethod = Literal["qr", "cqr", "rcqr"]


def dion_rank(m: int, n: int, *, rank_fraction: float, rank_multiple: int = 1) -> int:
    """r = ceil(rank_fraction * min(m, n)), rounded up to a multiple of `rank_multiple`, capped at min(m, n).

    (Dion's rank fraction, arXiv 2504.05295 v3; rounding up and the cap follow the official implementation.)
    The product is rounded to 9 decimals first so that 0.1 * 30 gives 3, not 4.
    """
    assert 0.0 < rank_fraction <= 1.0, f"rank_fraction must be in (0, 1], got {rank_fraction}"
    assert rank_multiple >= 1, f"rank_multiple must be >= 1, got {rank_multiple}"
    short = min(m, n)
    r = math.ceil(round(rank_fraction * short, 9))
    r = math.ceil(r / rank_multiple) * rank_multiple
    return max(1, min(r, short))


def dion_transposed(m: int, n: int) -> bool:
    """One-device orientation: work on A = B^T when m < n, so P = A Q is on the long side (official rule)."""
    return m < n


def dion_compresses(m: int, n: int, r: int) -> bool:
    """Data-parallel Dion exchanges P and R, (m + n) r numbers, only when that is less than the m n gradient."""
    return (m + n) * r < m * n


def init_q(m: int, n: int, r: int, *, transposed: bool, seed: int) -> Tensor:
    """Initial right factor: standard Gaussian (rows x r), rows = m if transposed else n, fp32 on the CPU.

    Drawn on the global shape from a private generator, so it is the same on every rank and for every sharding
    (the paper only says "random"; the seeding is this package's contract).
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(m if transposed else n, r, generator=gen)


def orthonormalize(P: Tensor, *, method: QRMethod = "rcqr", seed: int = 0, oversample: float = 1.25) -> Tensor:
    """Orthonormal basis of the columns of P (rows x r), in fp32 and outside autocast (Dion's Orthonormalize).

    "qr": Householder QR. "cqr": Cholesky-QR, P L^-T with L L^T = P^T P, done twice (CholeskyQR2, Fukaya et al.
    2014: one pass leaves an orthogonality error of about eps cond(P)^2, 1e-3 on a random first step; the
    official code does one pass and only after 150 warm-up steps). "rcqr": randomised Cholesky-QR: a
    Gaussian sketch S (k x rows, k = 128 ceil(oversample r / 128), entries N(0, 1/k), generator seeded with
    `seed`) gives R1 from QR(S P); P1 = P R1^-1 is well conditioned and one Cholesky-QR pass finishes it.
    A wide or square P always uses Householder QR (as the official code). When a Cholesky factorisation fails
    or the result is not finite (rank-deficient P) this falls back to Householder QR; the check synchronises.
    The methods agree up to column signs, which cancel in P R^T and P Q^T.
    """
    with torch.autocast(P.device.type, enabled=False):
        P = P.float()
        rows, r = P.shape
        if method == "qr" or rows <= r:
            return torch.linalg.qr(P).Q
        X = P
        if method == "rcqr":
            k = 128 * math.ceil(oversample * r / 128)
            gen = torch.Generator(device=P.device).manual_seed(seed)
            S = torch.randn(k, rows, generator=gen, device=P.device) / math.sqrt(k)
            R1 = torch.linalg.qr(S @ P, mode="r").R
            X = torch.linalg.solve_triangular(R1, P, upper=True, left=False)
        else:
            assert method == "cqr", f"unknown qr_method {method!r}"
        failed = torch.zeros((), dtype=torch.bool, device=P.device)
        for _ in range(1 if method == "rcqr" else 2):  # "cqr" is CholeskyQR2: one pass loses eps cond(P)^2
            L, info = torch.linalg.cholesky_ex(X.T @ X)
            X = torch.linalg.solve_triangular(L.T, X, upper=True, left=False)
            failed |= info != 0
        if bool(failed) or not bool(torch.isfinite(X).all()):
            return torch.linalg.qr(P).Q
        return X


def dion_orthonormalize(P: Tensor, *, method: QRMethod, seed: int, oversample: float) -> Tensor:
    """`orthonormalize`, except that an all-zero P (A Q = 0, e.g. B = 0) stays zero: that step makes no update."""
    return torch.where(P.any(), orthonormalize(P, method=method, seed=seed, oversample=oversample), 0.0)


def dion_project(grad: Tensor, momentum: Tensor, Q: Tensor, *, transposed: bool) -> Tensor:
    """B = M + G into `momentum` in place; returns A Q in fp32 (A = B, or B^T if transposed). Algorithm 1.

    Under FSDP the arguments are the local row shards and the result is this rank's partial sum of A Q.
    """
    with torch.autocast(momentum.device.type, enabled=False):
        momentum.add_(grad.to(momentum.dtype))
        A = momentum.T if transposed else momentum
        return (A @ Q.to(A.dtype)).float()


def dion_finish(
    param: Tensor,
    momentum: Tensor,
    Q: Tensor,
    P: Tensor,
    *,
    lr: float,
    mu: float,
    weight_decay: float,
    eps: float,
    scale: float,
    transposed: bool,
    r_group: ProcessGroup | None = None,
    norm_group: ProcessGroup | None = None,
) -> int:
    """From the orthonormal P: R = A^T P, error feedback, Q = ColumnNormalize(R), weight update. Algorithm 1.

    `momentum` holds B (from `dion_project`) and becomes M = B - (1 - mu) P R^T; `Q` and `param` are updated in
    place. `scale` = sqrt(m / n) of the full parameter. `r_group`: average R over these ranks (data-parallel
    mode). `norm_group`: sum the column sums of squares of R over these ranks (FSDP mode, R row-sharded).
    P = 0 keeps Q and leaves only the weight decay. Returns the ring bytes sent.
    """
    with torch.autocast(param.device.type, enabled=False):
        A = momentum.T if transposed else momentum
        R = (A.T @ P.to(A.dtype)).float()  # (a_cols, r)
        sent = comm.all_reduce_(R, r_group, mean=True)
        Pm, Rm = P.to(momentum.dtype), R.to(momentum.dtype)
        if transposed:
            momentum.addmm_(Rm, Pm.T, alpha=-(1 - mu))  # B - (1 - mu) (P R^T)^T
        else:
            momentum.addmm_(Pm, Rm.T, alpha=-(1 - mu))
        sumsq = R.square().sum(dim=0)  # (r,)
        sent += comm.all_reduce_(sumsq, norm_group, mean=False)
        new_q = torch.where(P.any(), R / (sumsq.sqrt() + eps), Q.float())
        Q.copy_(new_q)
        param.mul_(1 - lr * weight_decay)
        Pp, Qp = P.to(param.dtype), new_q.to(param.dtype)
        if transposed:
            param.addmm_(Qp, Pp.T, alpha=-lr * scale)
        else:
            param.addmm_(Pp, Qp.T, alpha=-lr * scale)
    return sent


def dion_update(
    param: Tensor,
    grad: Tensor,
    momentum: Tensor,
    Q: Tensor,
    *,
    lr: float,
    mu: float = 0.95,
    weight_decay: float = 0.01,
    eps: float = 1e-8,
    transposed: bool | None = None,
    qr_method: QRMethod = "rcqr",
    seed: int = 0,
    oversample: float = 1.25,
) -> dict[str, float]:
    """One-device Dion step on one matrix (arXiv 2504.05295 v3, Algorithm 1), in place on param, momentum, Q.

    `transposed` None uses `dion_transposed(m, n)`. Returns detached stats: the Frobenius norm of P Q^T, which
    is sqrt(r) unless the step was skipped (all-zero A Q) or a column of R was zero.
    """
    m, n = param.shape
    transposed = dion_transposed(m, n) if transposed is None else transposed
    P = dion_orthonormalize(
        dion_project(grad, momentum, Q, transposed=transposed), method=qr_method, seed=seed, oversample=oversample
    )
    dion_finish(
        param, momentum, Q, P, lr=lr, mu=mu, weight_decay=weight_decay, eps=eps, scale=math.sqrt(m / n),
        transposed=transposed,
    )  # fmt: skip
    return {"update_norm": float(torch.linalg.matrix_norm(P @ Q.float().T))}


def data_parallel_comm_bytes(
    shapes: Sequence[tuple[int, int]],
    *,
    rank_fraction: float,
    rank_multiple: int = 1,
    world: int,
    num_scalar: int = 0,
    bytes_per_element: int = 4,
) -> dict[str, float]:
    """Ring bytes one rank sends per step: Dion's data-parallel sync vs an all-reduce of the full gradient.

    `shapes` are the Dion matrices, `num_scalar` the element count of all other (AdamW) parameters, whose
    gradients are all-reduced in both cases. Per matrix, Dion sends 2 (m + n) r (W - 1) / W elements (P
    reduce-scatter + all-gather, R all-reduce) when `dion_compresses`, else 2 m n (W - 1) / W. The padding of
    a short last batch of same-shaped P matrices (see `comm.reduce_apply_gather`) is not counted.
    Returns {"dion": bytes, "all_reduce": bytes, "ratio": dion / all_reduce}.
    """
    per_element = 2 * (world - 1) / world * bytes_per_element
    full = sum(m * n for m, n in shapes) + num_scalar
    dion = num_scalar
    for m, n in shapes:
        r = dion_rank(m, n, rank_fraction=rank_fraction, rank_multiple=rank_multiple)
        dion += (m + n) * r if dion_compresses(m, n, r) else m * n
    return {"dion": dion * per_element, "all_reduce": full * per_element, "ratio": dion / full if full else 1.0}


_GROUP_KEYS = {
    "params", "algorithm", "lr", "mu", "rank_fraction", "rank_multiple", "weight_decay", "eps", "qr_method",
    "oversample", "cqr_warmup_steps", "transpose", "betas",
}  # fmt: skip


class Dion(torch.optim.Optimizer):
    """Holds Dion state and runs `dion_project` / `dion_orthonormalize` / `dion_finish` per matrix.

    Param groups carry `algorithm`: "dion" (default; 2-D parameters), "adamw" or "lion" (any shape; see
    `reasonrl.optim.groups` for which parameters belong where). Defaults follow the official implementation
    (lr 0.01, mu 0.95, rank_fraction 1, weight decay 0.01, eps 1e-8, rcqr with oversampling 1.25, AdamW betas
    (0.9, 0.95)). `eps` is both the column-normalisation and the AdamW epsilon, as in the official code.
    Per-group keys override the constructor's; unknown keys raise.

    Ambiguities, resolved as keyword options (paper value, where it has one, as default):
    * `transpose`: None = the one-device shape rule (transpose iff m < n); True / False force it. FSDP2
      (DTensor) matrices always run transposed (the sharded dim 0 must not be the orthonormalised side).
    * `cqr_warmup_steps`: with qr_method "cqr", the first steps use Householder QR (the official reference
      defaults to 150 warm-up steps; what it uses during warm-up is inferred, and only rounding depends on it).
    * `seed`: Q0 of parameter i is `init_q(..., seed=seed + i)` with i its position over all groups; rcqr
      sketches are seeded from (seed, i, step), so a resumed run draws the same sketches.

    Data-parallel mode (`process_group`): the trainer must NOT all-reduce any gradient of the parameters
    given to this optimizer (no DDP wrapper, or always `no_sync()`); each rank passes its local mean gradient
    and `step()` does all gradient communication. Clip with `comm.clip_grad_norm_(..., process_group=...)`
    (rank-consistent); call `synchronize_for_checkpoint()` on every rank before saving `state_dict()`.
    `last_step_bytes` is the ring-model traffic of the latest step.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        *,
        lr: float = 0.01,
        mu: float = 0.95,
        rank_fraction: float = 1.0,
        rank_multiple: int = 1,
        weight_decay: float = 0.01,
        eps: float = 1e-8,
        qr_method: QRMethod = "rcqr",
        oversample: float = 1.25,
        cqr_warmup_steps: int = 150,
        transpose: bool | None = None,
        betas: tuple[float, float] = (0.9, 0.95),
        state_dtype: torch.dtype = torch.float32,
        seed: int = 0,
        process_group: ProcessGroup | None = None,
    ) -> None:
        assert state_dtype in (torch.float32, torch.bfloat16), f"state_dtype must be fp32 or bf16, got {state_dtype}"
        defaults = dict(
            algorithm="dion", lr=lr, mu=mu, rank_fraction=rank_fraction, rank_multiple=rank_multiple,
            weight_decay=weight_decay, eps=eps, qr_method=qr_method, oversample=oversample,
            cqr_warmup_steps=cqr_warmup_steps, transpose=transpose, betas=tuple(betas),
        )  # fmt: skip
        super().__init__(params, defaults)
        self.state_dtype = state_dtype
        self.seed = seed
        self.process_group = process_group
        self.last_step_bytes = 0

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        check_group_keys("Dion", param_group, _GROUP_KEYS)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        index = self.__dict__.setdefault("_index", {})  # position of each parameter over all groups: Q0 seeds
        for p in group["params"]:
            index[id(p)] = len(index)
        check_group_algorithm("Dion", group, "dion")
        if group["algorithm"] == "dion" and group["transpose"] is False and any(map(comm.is_dtensor, group["params"])):
            raise ValueError("Dion: FSDP2 (DTensor) matrices must run transposed; do not set transpose=False")

    def _transposed(self, p: Tensor, group: dict[str, Any]) -> bool:
        if comm.is_dtensor(p):
            return True
        return dion_transposed(*p.shape) if group["transpose"] is None else group["transpose"]

    def _init_state(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        m, n = p.shape  # the global shape, also for a DTensor
        r = dion_rank(m, n, rank_fraction=group["rank_fraction"], rank_multiple=group["rank_multiple"])
        q = init_q(m, n, r, transposed=self._transposed(p, group), seed=self.seed + self._index[id(p)])
        q = q.to(device=comm.local(p).device, dtype=self.state_dtype)
        state["step"] = 0
        state["momentum"] = torch.zeros_like(p, dtype=self.state_dtype)
        state["Q"] = comm.shard_like(q, p) if comm.is_dtensor(p) else q

    def _sync(self, p: Tensor) -> tuple[str, ProcessGroup | None]:
        """How a Dion matrix communicates: ('local' | 'fsdp' | 'dp' (compressed) | 'dp_full', its group)."""
        if comm.is_dtensor(p):
            assert self.process_group is None, "Dion: process_group (data parallel) with DTensors is not supported"
            return "fsdp", comm.dim0_sharded_group(p)
        if self.process_group is None:
            return "local", None
        r = self.state[p]["Q"].shape[1]
        return ("dp", self.process_group) if dion_compresses(*p.shape, r) else ("dp_full", None)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scalars, matrices = [], []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["algorithm"] != "dion":
                    scalars.append((p, group))
                    continue
                if not self.state[p]:
                    self._init_state(p, group, self.state[p])
                matrices.append((p, group, *self._sync(p)))

        # Data parallel: whatever is not compressed is all-reduced here, in one message.
        full_sync = [p.grad for p, _ in scalars if not comm.is_dtensor(p)]
        full_sync += [p.grad for p, _, mode, _ in matrices if mode == "dp_full"]
        sent = comm.all_reduce_list_(full_sync, self.process_group, mean=True)
        for p, group in scalars:
            scalar_step(comm.local(p), comm.local(p.grad), self.state[p], group)

        # Dion: A Q for every matrix; reduce + orthonormalise in batches per communication group; finish each.
        projected = []
        batches: dict[tuple[str, int], list[int]] = {}
        for i, (p, group, mode, pg) in enumerate(matrices):
            state = self.state[p]
            state["step"] += 1
            grad, momentum, q = comm.local(p.grad), comm.local(state["momentum"]), comm.local(state["Q"])
            projected.append(dion_project(grad, momentum, q, transposed=self._transposed(p, group)))
            batches.setdefault((mode, id(pg)), []).append(i)
        orthonormal: list[Tensor] = [torch.empty(0)] * len(matrices)
        for (mode, _), idx in batches.items():
            fns = [self._orthonormalizer(matrices[i][0], matrices[i][1]) for i in idx]
            results, nbytes = comm.reduce_apply_gather(
                [projected[i] for i in idx], fns, matrices[idx[0]][3], mean=mode == "dp"
            )
            sent += nbytes
            for i, res in zip(idx, results, strict=True):
                orthonormal[i] = res
        for (p, group, mode, pg), P in zip(matrices, orthonormal, strict=True):
            state = self.state[p]
            m, n = p.shape
            sent += dion_finish(
                comm.local(p), comm.local(state["momentum"]), comm.local(state["Q"]), P, lr=group["lr"],
                mu=group["mu"], weight_decay=group["weight_decay"], eps=group["eps"], scale=math.sqrt(m / n),
                transposed=self._transposed(p, group), r_group=pg if mode == "dp" else None,
                norm_group=pg if mode == "fsdp" else None,
            )  # fmt: skip
        self.last_step_bytes = sent
        return loss

    def _orthonormalizer(self, p: Tensor, group: dict[str, Any]) -> Callable[[Tensor], Tensor]:
        step = self.state[p]["step"]
        method = group["qr_method"]
        if method == "cqr" and step <= group["cqr_warmup_steps"]:
            method = "qr"
        seed = (self.seed * 1_000_003 + self._index[id(p)] * 10_007 + step) % (2**63)
        return lambda P: dion_orthonormalize(P, method=method, seed=seed, oversample=group["oversample"])

    def synchronize_for_checkpoint(self) -> None:
        """Data-parallel mode: replace every rank's momenta by their mean (call on all ranks before saving).

        Weights depend on the rank momenta only through their mean, so this does not change the trajectory.
        """
        moms = [s["momentum"] for p, s in self.state.items() if "Q" in s and not comm.is_dtensor(p)]
        comm.all_reduce_list_(moms, self.process_group, mean=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch's, but momentum and Q keep `state_dtype` (torch casts loaded state to the parameter dtype)."""
        super().load_state_dict(state_dict)
        for s in self.state.values():
            for key in ("momentum", "Q"):
                if key in s:
                    s[key] = s[key].to(self.state_dtype)
