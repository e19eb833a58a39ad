"""The one place that touches torch.distributed (outside optim/). Every helper is a no-op on one process.

Launch with `torchrun --nproc_per_node N -m reasonrl <command> ...`; on CPU the backend is gloo.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def init(backend: str = "auto") -> None:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); otherwise do nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))


def launched_world_size() -> int:
    """The number of processes this run was launched with (torchrun's WORLD_SIZE), known before `init`."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (a copy, on `x`'s device); identity on one process. NCCL reduces GPU tensors only, so a
    CPU tensor (a count) makes the trip through this rank's GPU there."""
    x = x.clone()
    if is_dist():
        y = x.to(device()) if dist.get_backend() == "nccl" else x
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        x = y.to(x.device)
    return x


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    return all_reduce_sum(x) / world_size()


def all_true(flag: bool) -> bool:
    """Whether `flag` holds on every process (one all-reduce: every process must ask); `flag` on one process."""
    return all_reduce_sum(torch.tensor([0.0 if flag else 1.0])).item() == 0


def all_gather_object(obj):
    """List of `obj` from every rank (in rank order); `[obj]` on one process."""
    if not is_dist():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(model: torch.nn.Module, strategy: str) -> torch.nn.Module:
    """Apply data parallelism in one place: DDP, or FSDP2 (`fully_shard` per decoder layer, then the root).

    On one process the model is returned unchanged.
    """
    if not is_dist():
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device().index] if device().type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    assert strategy == "fsdp2", f"unknown strategy {strategy}"
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)
    return model


def wrap_frozen(model: torch.nn.Module, strategy: str) -> torch.nn.Module:
    """A model that is only read (RL's reference model): sharded like the trained ones under FSDP2 (only its
    parameters are split: it has no gradients or optimizer state), whole otherwise (DDP has nothing to average)."""
    return wrap_model(model, strategy) if is_dist() and strategy == "fsdp2" else model


def is_sharded(model: torch.nn.Module) -> bool:
    """An FSDP2 (`fully_shard`) model: its parameters are DTensor shards between forward passes."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def decoding_model(model: torch.nn.Module, mode: str, sync_every: int) -> tuple[torch.nn.Module, int]:
    """`(module, lockstep)`: what the sampler decodes `model` with under `dist.rollout_params = mode`. A model that
    is not sharded: its bare module, lockstep 0 (each process decodes on its own). Sharded: "gathered" =
    `gathered_replica` (a collective; the copy lives as long as the caller keeps it), lockstep 0; "lockstep" = the
    sharded model itself, lockstep `sync_every` (`sample(..., lockstep=k)` keeps every process stepping until all
    are done, asked every k steps)."""
    model = unwrap(model)
    if not is_sharded(model):
        return model, 0
    assert mode in ("gathered", "lockstep"), f"unknown dist.rollout_params {mode!r}"
    return (gathered_replica(model), 0) if mode == "gathered" else (model, sync_every)


def gathered_replica(model: torch.nn.Module) -> torch.nn.Module:
    """A plain copy of an FSDP2-sharded Hugging Face model for decoding: the model's own class (no FSDP hooks, so
    no communication during decoding) with the same LoRA adapters injected when it has them (peft's config: the
    copy computes what the model computes, adapters unmerged), every parameter its full tensor
    (`DTensor.full_tensor()`: one all-gather per parameter, in the same order on every process; tied parameters
    stay tied and are gathered once), buffers shared, no gradients, eval mode. Collective. One full copy of the
    parameters on every process, freed when the caller drops it."""
    import copy

    from peft import inject_adapter_in_model
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor
    from transformers import PreTrainedModel

    from reasonrl.model.lora import has_lora

    assert isinstance(model, PreTrainedModel), f"{type(model).__name__}: only Hugging Face models are gathered"
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))  # fully_shard subclasses it
    with torch.device("meta"):
        replica = cls(copy.deepcopy(model.config))
        if has_lora(model):  # LoRA (`model.lora`): the same adapters
            for name, config in model.peft_config.items():
                inject_adapter_in_model(copy.deepcopy(config), replica, adapter_name=name)
    full: dict[int, torch.nn.Parameter] = {}
    with torch.no_grad():
        for name, p in model.named_parameters(remove_duplicate=False):
            if id(p) not in full:  # a parameter outside a forward pass is a shard; the root's may be left whole
                t = p.full_tensor() if isinstance(p, DTensor) else p.detach().clone()
                full[id(p)] = torch.nn.Parameter(t, requires_grad=False)
            set_tensor(replica, name, full[id(p)])
        for name, b in model.named_buffers(remove_duplicate=False):
            set_tensor(replica, name, b)
    assert not any(t.is_meta for t in (*replica.parameters(), *replica.buffers())), "a tensor was not gathered"
    replica.generation_config = copy.deepcopy(model.generation_config)
    return replica.eval()


def set_tensor(root: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace the parameter or buffer `name` ("layers.0.mlp.weight") of `root` by `value`."""
    owner, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(owner), leaf, value)


def is_ddp(model: torch.nn.Module) -> bool:
    from torch.nn.parallel import DistributedDataParallel

    return isinstance(model, DistributedDataParallel)


GRAD_BUCKET_NUMEL = 1 << 24  # elements per all-reduce in `average_gradients` (64 MB in float32)


def average_gradients(model: torch.nn.Module) -> None:
    """Average every parameter's gradient over processes, as DDP does during its backward: for passes run on a DDP
    model's bare module (`unwrap`), which DDP's hooks do not see. Gradients are flattened into buckets of up to
    `GRAD_BUCKET_NUMEL` elements (a larger parameter is a bucket of its own), one all-reduce each; a missing
    gradient counts as zeros, so every process makes the same collectives whatever it trained on. Identity on one
    process."""
    if not is_dist():
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    buckets: list[list[torch.Tensor]] = [[]]
    size = 0
    for p in params:
        if size and size + p.numel() > GRAD_BUCKET_NUMEL:
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += p.numel()
    for bucket in buckets:
        flat = all_reduce_sum(torch.cat([p.grad.reshape(-1) for p in bucket])) / world_size()
        for p, g in zip(bucket, flat.split([p.numel() for p in bucket]), strict=True):
            p.grad.copy_(g.view_as(p))


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a HF causal LM (`model.model.layers` for Llama/Qwen2-style models)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    assert layers is not None, f"{type(model).__name__}: cannot find decoder layers at model.model.layers"
    return list(layers)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model under a DDP wrapper (FSDP2 shards in place and needs no unwrapping)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def full_state_dict(model: torch.nn.Module, *, trained_only: bool = False) -> dict[str, torch.Tensor]:
    """A full, CPU state dict (gathers FSDP2 shards; a collective) on rank 0, an empty dict on the other ranks;
    plain `state_dict` on one process. `trained_only`: only the parameters that require gradients (a LoRA model's
    adapters and trained heads): its frozen base is neither gathered nor copied to the CPU, which for a 7B base
    would be a full copy on rank 0 at every checkpoint."""
    if not is_dist():
        state = model.state_dict(keep_vars=True)
        return {k: v.detach().cpu() for k, v in state.items() if not trained_only or v.requires_grad}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(unwrap(model), options=StateDictOptions(full_state_dict=True, cpu_offload=True,
                                                                        ignore_frozen_params=trained_only))


def destroy() -> None:
    """Leave the process group; the barrier first keeps a rank from tearing its connections down while another
    still uses them (gloo then aborts that rank: "terminate called without an active exception")."""
    if is_dist():
        dist.barrier()
        dist.destroy_process_group()


def main_decides(fn):
    """Rank 0 runs `fn` (what one process must look at or write: a run directory, a tracker) and every rank learns
    how it went in one broadcast, so no rank waits in a collective for a rank 0 that failed: a UserError is raised
    as the same UserError on every rank; any other exception is re-raised with its traceback on rank 0 and as a
    RuntimeError naming rank 0's failure on the others. Returns fn's result on rank 0, None on the others."""
    from reasonrl.errors import UserError, one_line

    result, outcome, caught = None, None, None
    if is_main():
        try:
            result = fn()
        except UserError as e:
            outcome = ("user", str(e))
        except BaseException as e:  # KeyboardInterrupt and SystemExit too: the others must not wait for them
            outcome, caught = ("other", one_line(e, typed=True)), e
    outcome = broadcast_object(outcome)
    if outcome is None:
        return result
    kind, text = outcome
    if kind == "user":
        raise UserError(text)
    if caught is not None:
        raise caught
    raise RuntimeError(f"rank 0 failed (rank {rank()} stops with it): {text}")


def first_error(error):
    """The first (by rank) of the processes' `error`s that is not None, the same on every process, or None when
    none failed (one all-gather: every process must ask, failed or not)."""
    return next((e for e in all_gather_object(error) if e is not None), None)
