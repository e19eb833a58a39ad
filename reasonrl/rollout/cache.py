"""A preallocated KV cache for batched decoding that plugs into any `transformers` model through its `Cache` API.

`DynamicCache` concatenates every step (`torch.cat` re-copies the whole cache: O(T^2) bytes per sequence) and
`StaticCache` always attends over its full capacity. `PreallocatedLayer` writes each step in place into a buffer
sized once for prompt + response, and hands attention a view of the filled columns only, so no step copies the
cache and attention costs what the current length costs. Finished rows are dropped with `keep_rows`.

Models whose layers are not all plain full attention (sliding windows, linear attention, KV sharing) get the
library's own `DynamicCache`, which knows their layer types; the sampler works with either.
"""

from __future__ import annotations

import inspect

import torch
from transformers import Cache, DynamicCache, PreTrainedModel
from transformers.cache_utils import CacheLayerMixin, get_layer_types_and_kwargs


def cache_kwarg(model: PreTrainedModel) -> str:
    """transformers renamed `past_key_values` to `cache`; the name this model's forward takes."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class PreallocatedLayer(CacheLayerMixin):
    """One layer's keys and values in `(B, H, capacity, D)` buffers, filled left to right."""

    is_sliding = False
    is_croppable = False

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, dk = key_states.shape
        dv = value_states.shape[-1]
        self.device = key_states.device
        self.keys = key_states.new_zeros(b, h, self.capacity, dk)
        self.values = value_states.new_zeros(b, h, self.capacity, dv)
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, end = self.length, self.length + key_states.shape[-2]
        assert end <= self.capacity, f"KV cache overflow: {end} > capacity {self.capacity}"
        self.keys[:, :, start:end] = key_states
        self.values[:, :, start:end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.capacity

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.keys = self.keys.index_select(0, indices)
            self.values = self.values.index_select(0, indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self.keys = self.keys.repeat_interleave(repeats, dim=0)
            self.values = self.values.repeat_interleave(repeats, dim=0)


def make_cache(model: PreTrainedModel, capacity: int) -> Cache:
    """A preallocated cache of `capacity` columns when every layer is full attention, else a `DynamicCache`."""
    config = model.config.get_text_config(decoder=True)
    layer_types, _ = get_layer_types_and_kwargs(config)
    if all(t == "full_attention" for t in layer_types):
        return Cache(layers=[PreallocatedLayer(capacity) for _ in layer_types])
    return DynamicCache(config=config)


def keep_rows(cache: Cache, rows: torch.Tensor) -> None:
    """Keep only batch rows `rows` (a long index tensor) of every layer, in place."""
    cache.batch_select_indices(rows)


def repeat_rows(cache: Cache, repeats: int) -> None:
    """Repeat every batch row `repeats` times (row i -> rows i*repeats .. i*repeats + repeats - 1), in place."""
    if repeats > 1:
        cache.batch_repeat_interleave(repeats)


def split_prompts(cache: Cache, width: int, rows: int, capacity: int
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor], Cache]:
    """After a prefill of U prompts into `cache` (preallocated layers): the prompts' keys and values (the first
    `width` columns, one copy per prompt, per layer) and a fresh preallocated cache of `rows` rows x `capacity`
    columns for the responses. Shared-prefix decoding (`fast_step.shared_prefix_attention`) attends over both."""
    keys = [layer.keys[:, :, :width].contiguous() for layer in cache.layers]
    values = [layer.values[:, :, :width].contiguous() for layer in cache.layers]
    out = Cache(layers=[PreallocatedLayer(capacity) for _ in cache.layers])
    for layer, k, v in zip(out.layers, keys, values, strict=True):
        layer.lazy_initialization(k.new_empty(rows, k.shape[1], 0, k.shape[3]),
                                  v.new_empty(rows, v.shape[1], 0, v.shape[3]))
    return keys, values, out
