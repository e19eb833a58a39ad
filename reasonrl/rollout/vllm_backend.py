"""Optional vLLM backend for GPU runs: `SamplingParams(backend="vllm")`, imported only when chosen.

`model` must be a `vllm.LLM` (the caller builds it and pushes the policy's weights into it after each update;
how depends on the vLLM version) or a model path, from which an `LLM` is built once and cached. The output is
the same `Rollout` layout as the built-in engine. Supported: temperature, top_p, top_k, max_new_tokens, n, stop,
seed, ignore_eos and prefixes. Banned words and tool calls need the per-step control of the built-in engine and
are refused with a `UserError`.

Log-probs are the ones vLLM reports for the sampled tokens (by default vLLM returns raw model log-probs, before
temperature and truncation). Trainers that need the temperature-T `old_logp` should recompute them with
`reasonrl.model.logprobs.sequence_logprobs`, or build the `LLM` with `logprobs_mode="processed_logprobs"`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

import torch
from transformers import PreTrainedTokenizerBase

from reasonrl.errors import UserError
from reasonrl.rollout.engine import Decoded

_ENGINES: dict[str, object] = {}


def import_vllm():
    try:
        return importlib.import_module("vllm")
    except ImportError:
        raise UserError(
            "sampling.backend = 'vllm' needs the vllm package, which is not installed "
            "(pip install vllm, on a CUDA machine); use backend = 'hf' otherwise"
        ) from None


def sample_vllm(
    model,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    params,
    *,
    prefixes: list[str] | None = None,
    tools: Mapping[str, Callable[[str], str]] | None = None,
):
    """`sample()` on vLLM; see the module docstring for what is supported."""
    from reasonrl.rollout.sampler import assemble

    vllm = import_vllm()
    if tools or params.banned_words:
        raise UserError("sampling: tools and banned_words need backend = 'hf' (the vllm backend cannot do them)")
    llm = _engine(vllm, model)
    prompt_ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    prefix_ids = [tokenizer.encode(p, add_special_tokens=False) for p in prefixes or [""] * len(prompts)]
    vllm_params = vllm.SamplingParams(
        n=params.n,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k if params.top_k > 0 else -1,
        max_tokens=params.max_new_tokens,
        stop=list(params.stop),
        include_stop_str_in_output=True,
        ignore_eos=params.ignore_eos,
        seed=params.seed,
        logprobs=0,
    )
    requests = [{"prompt_token_ids": a + b} for a, b in zip(prompt_ids, prefix_ids, strict=True)]
    outputs = llm.generate(requests, vllm_params, use_tqdm=False)
    decoded = _decoded([c for out in outputs for c in out.outputs], params.max_new_tokens, tokenizer.pad_token_id)
    return assemble(tokenizer, prompt_ids, prefix_ids, decoded, params.n)


def _engine(vllm, model):
    if isinstance(model, vllm.LLM):
        return model
    if not isinstance(model, str):
        raise UserError("sampling.backend = 'vllm' takes a vllm.LLM or a model path as the model")
    if model not in _ENGINES:
        _ENGINES[model] = vllm.LLM(model=model)
    return _ENGINES[model]


def _decoded(completions, width: int, pad_id: int) -> Decoded:
    num = len(completions)
    tokens = torch.full((num, width), pad_id, dtype=torch.long)
    sampled = torch.zeros(num, width, dtype=torch.bool)
    logp = torch.zeros(num, width)
    lengths, reasons = [], []
    for i, c in enumerate(completions):
        ids = list(c.token_ids)[:width]
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        sampled[i, : len(ids)] = True
        logp[i, : len(ids)] = torch.tensor([lp[t].logprob for t, lp in zip(ids, c.logprobs, strict=False)])
        lengths.append(len(ids))
        reasons.append(_reason(c))
    return Decoded(tokens=tokens, sampled=sampled, logp=logp, sampling_logp=logp.clone(), lengths=lengths,
                   finish_reasons=reasons, num_tool_calls=[0] * num)


def _reason(completion) -> str:
    if completion.finish_reason == "length":
        return "length"
    return "eos" if completion.stop_reason is None else "stop"
