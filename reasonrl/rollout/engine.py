"""The decode loop of the Hugging Face backend: prefill once, then one token per active row per step.

Where the time goes, and what this loop does about it (profiles in docs/benchmarks_rollout.md):

- the KV cache is preallocated (`cache.py`): no per-step `torch.cat` over the whole cache;
- the `n` samples of a prompt share one prefill, and its keys and values stay stored once: every sample attends
  over them (shared-prefix decoding; the HF-forward path and compile repeat the cache rows instead);
- rows that finished are dropped from the batch (cache included) once enough of them have;
- attention mask and position ids are computed once, and sliced per step;
- the per-step Python work is a handful of tensor ops; decoding text (stop strings, tool tags, banned words)
  happens only when those features are asked for, and only for the rows that need it.

Every active row advances exactly one token per step, sampled or forced (tool output), so the step index is
the response column of every active row.

Lockstep (`lockstep = k >= 1`, an FSDP2-sharded model decoding on several processes): every forward pass
all-gathers the model's layers, so every process must make as many as the others, whatever lengths its rows
reach. A process whose rows are all done keeps stepping one finished row (its output is discarded: the row's
length is already set) until an all-reduced flag, asked every k steps, says every process is done; the
prefill and `max_new_tokens` are the same everywhere. Lockstep decodes with `model.forward` (the FSDP2 hooks
run there), never the built-in step, which reads weights directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from reasonrl import dist
from reasonrl.rollout.banned import BannedWords, token_texts
from reasonrl.rollout.cache import cache_kwarg, keep_rows, make_cache, repeat_rows, split_prompts
from reasonrl.rollout.compiled import compiled_step
from reasonrl.rollout.fast_step import DecodeStep, SharedPrompts, decode_logits, supports_fast_step
from reasonrl.rollout.processors import choose_tokens
from reasonrl.rollout.tools import ToolFn, closing_tags, run_tool
from reasonrl.rollout.triggers import completed_needles, could_end, tail_tokens

if TYPE_CHECKING:
    from reasonrl.rollout.sampler import SamplingParams


@dataclass
class Decoded:
    """What the loop produced after each row's context (prompt + prefix); rows are in output order."""

    tokens: torch.Tensor  # (N, T) long, pad after each row's length
    sampled: torch.Tensor  # (N, T) bool, False for forced (tool output) tokens and padding
    logp: torch.Tensor  # (N, T) float32, 0 where not sampled
    sampling_logp: torch.Tensor  # (N, T) float32, 0 where not sampled
    lengths: list[int]
    finish_reasons: list[str]
    num_tool_calls: list[int]


@dataclass
class _Row:
    """Python-side state of one sample, kept only when text features (stops, tools, bans) are on."""

    tokens: list[int]  # everything after the prompt: prefix, sampled and forced tokens
    ban_context: str = ""
    forced: deque[int] = field(default_factory=deque)
    num_tool_calls: int = 0


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(ids (B, W), mask (B, W) bool)`: each sequence right-aligned, padding on the left."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = True
    return ids, mask


class Decoder:
    """One batched sampling run. Build it, then call `run()` once."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        contexts: Sequence[Sequence[int]],
        prefix_ids: Sequence[Sequence[int]],
        params: SamplingParams,
        tools: Mapping[str, ToolFn] | None,
        *,
        lockstep: int = 0,
    ):
        self.model, self.tokenizer, self.params = model, tokenizer, params
        self.lockstep = lockstep  # k >= 1: step with the other processes, asking every k steps (module docstring)
        self.device = next(model.parameters()).device
        self.tools = dict(tools or {})
        self.needles = list(params.stop) + closing_tags(self.tools)
        self.num_rows = len(contexts) * params.n
        eos = {tokenizer.eos_token_id, *_as_list(model.generation_config.eos_token_id)} - {None}
        self.eos_ids = torch.tensor(sorted(eos), dtype=torch.long, device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(params.seed)
        self.contexts = contexts
        self.track_text = bool(self.needles or params.banned_words)
        self.could_end = could_end(self.needles, token_texts(tokenizer)) if self.needles else []
        self.rows: list[_Row] = []
        if self.track_text:
            self.rows = [_Row(tokens=list(prefix_ids[i // params.n])) for i in range(self.num_rows)]
        self.banned: BannedWords | None = None
        self.cache_kwarg = cache_kwarg(model)

    def run(self) -> Decoded:
        n, max_new = self.params.n, self.params.max_new_tokens
        ids, mask = left_pad(self.contexts, self.tokenizer.pad_token_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        width = ids.shape[1]
        cache = make_cache(self.model, width + max_new)
        logits = self._forward(ids, mask, _positions(mask), cache)[:, -1]
        use_fast = self.params.fast_step and not self.lockstep and supports_fast_step(self.model, cache)
        prompts = None
        if use_fast and self._share_prefix():  # the prompts' cache kept once, a response-only cache per row
            keys, values, cache = split_prompts(cache, width, self.num_rows, max_new)
            prompts = SharedPrompts(keys, values, mask, n)
        else:
            repeat_rows(cache, n)  # the n samples of a prompt share its prefill
        logits, mask = logits.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
        self._init_banned(logits.shape[-1])

        # every column after the prefill is filled by every active row, so mask and positions are known now
        attn = torch.cat([mask, mask.new_ones(self.num_rows, max_new)], dim=1)  # (N, W + T) bool
        pos0 = mask.sum(dim=1)  # position id of the first response token, (N,)
        active = torch.arange(self.num_rows, device=self.device)  # output row of each batch row
        live = set(range(self.num_rows))  # rows still sampling; finished rows stay in the batch until dropped
        fast = None
        if use_fast:
            step_fn = compiled_step() if self.params.compile else decode_logits
            fast = DecodeStep(self.model, cache, int(pos0.max()) + max_new, fn=step_fn, prefix=prompts)
            attn = fast.additive_mask(attn)
        out = _buffers(self.num_rows, max_new, self.tokenizer.pad_token_id, self.device)
        lengths, reasons = [max_new] * self.num_rows, ["length"] * self.num_rows
        for step in range(max_new):
            tokens, sampled, logp, slogp = self._choose(logits, active, step)
            out.tokens[active, step], out.sampled[active, step] = tokens, sampled
            out.logp[active, step], out.sampling_logp[active, step] = logp, slogp
            for row, reason in self._finished(tokens, sampled, active, live, step).items():
                lengths[row], reasons[row] = step + 1, reason
                live.discard(row)
            if step + 1 == max_new or self._stop(live, step):
                break
            if len(active) - len(live) >= max(1, len(active) // 8):
                # in lockstep a process with no live row keeps one finished row to step the model with
                keep = [i for i, r in enumerate(active.tolist()) if r in live] or [0]
                keep = torch.tensor(keep, device=self.device)
                keep_rows(cache, keep)
                active, tokens, attn, pos0 = active[keep], tokens[keep], attn[keep], pos0[keep]
            col = width + step + 1
            if fast is not None:
                logits = fast(tokens, attn[:, :col], pos0 + step, rows=active)
            else:
                logits = self._forward(tokens[:, None], attn[:, :col], (pos0 + step)[:, None], cache)[:, -1]
        _clear_after(out, lengths, self.tokenizer.pad_token_id)
        return Decoded(
            tokens=out.tokens,
            sampled=out.sampled,
            logp=out.logp,
            sampling_logp=out.sampling_logp,
            lengths=lengths,
            finish_reasons=reasons,
            num_tool_calls=[r.num_tool_calls for r in self.rows] if self.rows else [0] * self.num_rows,
        )

    def _stop(self, live: set[int], step: int) -> bool:
        """Stop when no row is live; in lockstep when no row is live on any process, asked after every
        `lockstep`-th step (one all-reduce, made at the same steps everywhere)."""
        if not self.lockstep:
            return not live
        return (step + 1) % self.lockstep == 0 and dist.all_true(not live)

    def _share_prefix(self) -> bool:
        """Decode with the prompts' keys and values stored once per prompt (`SamplingParams.share_prefix`; auto:
        whenever a prompt has several samples, except under compile)."""
        p = self.params
        return p.n > 1 and (not p.compile if p.share_prefix is None else p.share_prefix)

    def _forward(self, ids, attn, positions, cache) -> torch.Tensor:
        kwargs = {self.cache_kwarg: cache}
        out = self.model(
            input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=True, logits_to_keep=1, **kwargs
        )
        return out.logits

    def _init_banned(self, vocab_size: int) -> None:
        if not self.params.banned_words:
            return
        texts = token_texts(self.tokenizer)[:vocab_size]
        texts += [""] * (vocab_size - len(texts))
        self.banned = BannedWords(self.params.banned_words, texts)
        # a word may start in the prompt or prefix and be completed by the first sampled tokens
        keep = self.banned.context_chars + 1
        tails = self.tokenizer.batch_decode([list(c)[-keep:] for c in self.contexts], skip_special_tokens=True)
        for i, row in enumerate(self.rows):
            row.ban_context = self.banned.advance("", tails[i // self.params.n])

    def _choose(self, logits, active, step):
        """Tokens for the active rows: forced ones where a row has them queued, sampled otherwise."""
        p = self.params
        banned = None
        if self._in_window(step):
            contexts = [self.rows[r].ban_context for r in active.tolist()]
            banned = self.banned.mask(contexts, logits.shape[-1], logits.device)
        tokens, logp, slogp = choose_tokens(
            logits, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p, banned=banned, generator=self.generator
        )
        sampled = torch.ones_like(tokens, dtype=torch.bool)
        if self.rows:
            forced = [self.rows[r].forced.popleft() if self.rows[r].forced else -1 for r in active.tolist()]
            if any(f >= 0 for f in forced):
                forced_t = torch.tensor(forced, device=tokens.device)
                sampled = forced_t < 0
                tokens = torch.where(sampled, tokens, forced_t)
                logp, slogp = logp.masked_fill(~sampled, 0.0), slogp.masked_fill(~sampled, 0.0)
        return tokens, sampled, logp, slogp

    def _finished(self, tokens, sampled, active, live: set[int], step: int) -> dict[int, str]:
        """Live rows (output index) that end at this step, with their finish reason."""
        done: dict[int, str] = {}
        if not self.params.ignore_eos:
            is_eos = torch.isin(tokens, self.eos_ids) & sampled
            for i in is_eos.nonzero()[:, 0].tolist():
                if int(active[i]) in live:
                    done[int(active[i])] = "eos"
        if self.track_text:
            self._track(tokens.tolist(), sampled.tolist(), active.tolist(), live, done, self._in_window(step + 1))
        return done

    def _in_window(self, step: int) -> bool:
        """Do banned words apply to the token chosen at `step`?"""
        window = self.params.ban_window
        return self.banned is not None and (window is None or step < window)

    def _track(
        self,
        tokens: list[int],
        sampled: list[bool],
        active: list[int],
        live: set[int],
        done: dict[int, str],
        ban_next: bool,
    ) -> None:
        """Append the step's tokens to the rows' text state; stop rows on stop strings, run tools on closing tags."""
        texts = token_texts(self.tokenizer) if ban_next else None
        for r, t in zip(active, tokens, strict=True):
            if r not in live:
                continue
            row = self.rows[r]
            row.tokens.append(t)
            if texts is not None:
                row.ban_context = self.banned.advance(row.ban_context, texts[t] if t < len(texts) else "")
        if not self.needles:
            return
        check = [
            r
            for r, t, s in zip(active, tokens, sampled, strict=True)
            if s and r in live and r not in done and (t >= len(self.could_end) or self.could_end[t])
        ]
        if not check:
            return
        span = tail_tokens(self.needles)
        hits = completed_needles(self.tokenizer, [self.rows[r].tokens[-span:] for r in check], self.needles)
        for r, needle in zip(check, hits, strict=True):
            if needle is None:
                continue
            if needle in self.params.stop:
                done[r] = "stop"
            else:
                self._call_tool(self.rows[r], needle)

    def _call_tool(self, row: _Row, closing_tag: str) -> None:
        if row.num_tool_calls >= self.params.max_tool_calls:
            return
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        result = run_tool(self.tools, closing_tag, text, self.params.tool_result_template)
        if result is None:
            return
        row.num_tool_calls += 1
        row.forced.extend(self.tokenizer.encode(result, add_special_tokens=False))


@dataclass
class _Buffers:
    tokens: torch.Tensor
    sampled: torch.Tensor
    logp: torch.Tensor
    sampling_logp: torch.Tensor


def _buffers(num_rows: int, width: int, pad_id: int, device: torch.device) -> _Buffers:
    return _Buffers(
        tokens=torch.full((num_rows, width), pad_id, dtype=torch.long, device=device),
        sampled=torch.zeros(num_rows, width, dtype=torch.bool, device=device),
        logp=torch.zeros(num_rows, width, dtype=torch.float32, device=device),
        sampling_logp=torch.zeros(num_rows, width, dtype=torch.float32, device=device),
    )


def _clear_after(out: _Buffers, lengths: list[int], pad_id: int) -> None:
    """Pad everything past each row's length (rows that finished kept stepping until they were dropped)."""
    cols = torch.arange(out.tokens.shape[1], device=out.tokens.device)
    past = cols[None, :] >= torch.tensor(lengths, device=out.tokens.device)[:, None]  # (N, T)
    out.tokens.masked_fill_(past, pad_id)
    out.sampled.masked_fill_(past, False)
    out.logp.masked_fill_(past, 0.0)
    out.sampling_logp.masked_fill_(past, 0.0)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids under left padding: the count of real tokens before each column (0 on padding)."""
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0)


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]
