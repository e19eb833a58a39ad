"""`sample()`: batched sampling from any Hugging Face causal LM, the one entry point every RL method uses.

    params = SamplingParams(temperature=1.0, max_new_tokens=256, n=8, stop=("</answer>",), seed=0)
    rollout = sample(model, tokenizer, prompts, params)           # prompts: final strings, chat template applied
    logp = sequence_logprobs(model, rollout.input_ids, rollout.attention_mask, temperature=1.0)
    # == rollout.logprobs on rollout.response_mask, within float error

Layout of a `Rollout` (N = len(prompts) * n rows; the n samples of prompt i are rows i*n .. i*n + n - 1):

    column:  0 .. prompt_len-1                   prompt_len ..
    tokens:  <pad> <pad> prompt tokens           prefix | sampled and tool tokens | eos | <pad> ...
    mask:    False                               False  | True for sampled, False for tool output | True | False

Log-probs (`logprobs`) are those of the plain model distribution at temperature T, with no top-k / top-p /
banned-word truncation: exactly what a teacher-forced forward pass at temperature T gives, which is what the
PPO ratio needs. The log-probs of the truncated distribution the tokens were drawn from are in
`sampling_logprobs`. Greedy decoding (temperature 0) reports log-probs at temperature 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from reasonrl.errors import UserError
from reasonrl.rollout.engine import Decoder
from reasonrl.rollout.layout import Rollout, assemble

BACKENDS = ("hf", "vllm")


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. Plain values only, so configs and CLIs can fill every field."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax) decoding."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches top_p; 1 = off."""
    top_k: int = 0
    """Keep only the top_k most likely tokens; 0 = off."""
    max_new_tokens: int = 256
    """Most tokens after the prompt and prefix, tool output included."""
    n: int = 1
    """Samples per prompt (group sampling); the samples of one prompt are contiguous rows."""
    stop: tuple[str, ...] = ()
    """Stop strings: a sample ends with the token that completes one; text and tokens keep the stop string (and
    whatever else that last token holds). Stop strings inside a prefix or tool output do not count."""
    ignore_eos: bool = False
    """Keep sampling past EOS (benchmarks use it to make every sample exactly max_new_tokens long)."""
    seed: int = 0
    """Seed of the sampler's own torch.Generator; the same seed and inputs give the same samples."""
    banned_words: tuple[str, ...] = ()
    """Words that may not appear in the text of the first ban_window response tokens, however they are spelled
    in tokens. Case variants are the caller's: ("Wait", "wait")."""
    ban_window: int | None = None
    """Response tokens (counted after the prefix) during which banned_words apply; None = the whole response."""
    max_tool_calls: int = 4
    """Most tool calls per sample; later closing tags are left as plain text."""
    tool_result_template: str = "<result>{}</result>"
    """How a tool's output is wrapped before it is forced into the sample; {} is the output."""
    fast_step: bool = True
    """Decode Llama / Qwen2 models with the built-in step (rollout/fast_step.py) instead of model.forward."""
    compile: bool = False
    """Run that step through torch.compile (rollout/compiled.py): one graph per model shape, dynamic in batch and
    length, compiled on first use (tens of seconds on CPU) and cached; off by default (see docs/benchmarks.md)."""
    share_prefix: bool | None = None
    """Store each prompt's keys and values once and let its n samples attend over them (shared-prefix attention,
    rollout/fast_step.py) instead of copying them n times: less memory, and less attention work the longer the
    prompts (docs/benchmarks.md: 1.05x at 41 prompt tokens, 1.56x at 1,040). None = on when n > 1, except under
    compile; applies to the built-in decode step only (Llama / Qwen2), other models decode as before."""
    backend: str = "hf"
    """"hf": the built-in engine on any transformers model; "vllm": vLLM on GPU (optional dependency)."""

    def __post_init__(self):
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "banned_words", tuple(self.banned_words))
        for problem in _problems(self):
            raise UserError(f"sampling: {problem}")


def _problems(p: SamplingParams) -> list[str]:
    checks = [
        (p.temperature >= 0, f"temperature must be >= 0, got {p.temperature}"),
        (0 < p.top_p <= 1, f"top_p must lie in (0, 1], got {p.top_p}"),
        (p.top_k >= 0, f"top_k must be >= 0, got {p.top_k}"),
        (p.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {p.max_new_tokens}"),
        (p.n >= 1, f"n must be >= 1, got {p.n}"),
        (all(p.stop), "stop strings must be non-empty"),
        (all(p.banned_words), "banned_words must be non-empty strings"),
        (p.ban_window is None or p.ban_window >= 0, f"ban_window must be >= 0 or None, got {p.ban_window}"),
        (p.max_tool_calls >= 0, f"max_tool_calls must be >= 0, got {p.max_tool_calls}"),
        (p.tool_result_template.count("{}") == 1, "tool_result_template must contain exactly one {}"),
        (p.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}, got {p.backend!r}"),
        (not (p.share_prefix and p.compile), "share_prefix is not available with compile (the compiled step is the "
                                             "plain one): set one of them to false"),
    ]
    return [message for ok, message in checks if not ok]


def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    params: SamplingParams,
    *,
    prefixes: list[str] | None = None,
    tools: Mapping[str, Callable[[str], str]] | None = None,
    lockstep: int = 0,
) -> Rollout:
    """Sample `params.n` continuations of every prompt (optionally of `prompt + prefixes[i]`), with tool calls.

    `prompts` are final strings (the caller applies the chat template); `prefixes[i]` is a partial response that
    every sample of prompt i continues from (forced, mask False). `tools` maps a tag to a function: when a sample
    writes `<tag>x</tag>`, `tools[tag](x)` is called and its output forced in (see `rollout/tools.py`).

    `lockstep = k >= 1`: `model` is FSDP2-sharded and every process calls `sample` together: each keeps stepping
    the model until every process's rows are done (asked every k steps), so their all-gathers pair
    (`dist.decoding_model`; the engine's docstring). The samples are those of a lone process.
    """
    _check_inputs(tokenizer, prompts, prefixes, tools)
    if params.backend == "vllm":
        from reasonrl.rollout.vllm_backend import sample_vllm

        return sample_vllm(model, tokenizer, prompts, params, prefixes=prefixes, tools=tools)
    prompt_ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    prefix_ids = [tokenizer.encode(p, add_special_tokens=False) for p in prefixes or [""] * len(prompts)]
    if any(not p for p in prompt_ids):
        raise UserError("sample: every prompt must encode to at least one token")
    contexts = [a + b for a, b in zip(prompt_ids, prefix_ids, strict=True)]
    _check_positions(model, contexts)
    was_training = model.training
    model.eval()
    # FSDP2 all-gathers into buffers it keeps for training: made under inference_mode they could not be trained
    grad_mode = torch.no_grad() if lockstep else torch.inference_mode()
    try:
        with grad_mode:
            decoded = Decoder(model, tokenizer, contexts, prefix_ids, params, tools, lockstep=lockstep).run()
    finally:
        model.train(was_training)
    return assemble(tokenizer, prompt_ids, prefix_ids, decoded, params.n)


def check_prompt_positions(model, tokenizer, prompts: list[str], *, what: str = "sample",
                           names: list[str] | None = None) -> None:
    """Fail before any sampling (and before a progress bar) if a prompt does not fit the model's positions;
    `what` names the prompts in the message (e.g. "held-out data"), `names[i]` prompt i (default: its index)."""
    _check_positions(model, [tokenizer.encode(p, add_special_tokens=False) for p in prompts], what=what, names=names)


def _check_positions(model, contexts: list[list[int]], *, what: str = "sample", names: list[str] | None = None
                     ) -> None:
    """Every prompt (+ prefix) must leave room in the model's positions: a longer one would have the engine
    allocate a KV cache for it (terabytes for a runaway prompt) before failing."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    longest = max(range(len(contexts)), key=lambda i: len(contexts[i]), default=None)
    if positions is not None and longest is not None and len(contexts[longest]) >= positions:
        name = longest if names is None else names[longest]
        raise UserError(f"{what}: prompt {name} has {len(contexts[longest])} tokens, but the model has "
                        f"{positions} positions: shorten the prompt")


def _check_inputs(tokenizer, prompts, prefixes, tools) -> None:
    if not prompts:
        raise UserError("sample: prompts is empty")
    if prefixes is not None and len(prefixes) != len(prompts):
        raise UserError(f"sample: {len(prefixes)} prefixes for {len(prompts)} prompts (need one per prompt)")
    if tokenizer.pad_token_id is None:
        raise UserError("sample: the tokenizer has no pad token (set tokenizer.pad_token)")
    for tag in tools or {}:
        if not tag or any(c in tag for c in "<>/ "):
            raise UserError(f"sample: tool tag {tag!r} must be a bare name such as 'math_exp'")
