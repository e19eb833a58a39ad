"""The memory of one RL step from a model's shape: what benchmarks/memory.py projects for 0.5B-32B models and checks
against its measured rows.

Per process, in bytes (P: policy parameters, T: trainable ones; w: bytes per weight, a: per activation):

    weights      P w                   the policy (with LoRA: the frozen base, shared by reference and critic)
    gradients    T w                   all parameters for full fine-tuning; the adapters with LoRA
    optimizer    8 T                   AdamW's two fp32 moments
    reference    P w                   full fine-tuning: a frozen copy; LoRA: 0 (the policy with adapters off)
    critic       weights + gradients + optimizer of its own (full); its adapters and value head (LoRA)
    kv cache     2 L kv a R (p + n)    the rollout's cache: R sequences of p prompt + n response tokens
    activations  t act a               t tokens in the update's minibatch, `act_per_token` below
    logits       4 t V 4               fp32 logits, their temperature-scaled copy, softmax and its product with
                                       them (entropy), alive together in the loss (`model.logprobs`)

Sharding over n processes (FSDP2) divides weights, gradients, optimizer states, reference and critic by n and adds
one gathered block; a LoRA critic then holds a shard of the base of its own (`train/fsdp.py`: sharding gives each
model its own shards), and a "gathered" rollout decodes from a whole copy of the policy (P w more in the rollout).
The step's peak is the resident part (weights, reference, critic, optimizer states) plus the largest phase: the
rollout (kv cache), the critic update (its gradients or activations) or the policy update (its gradients, or
activations and logits: `step_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Qwen2.5 shapes (the models' config.json: hidden, intermediate, layers, heads, kv heads, vocabulary, tied head),
# written from memory of the published configs; the parameter counts they give (0.49B, 1.54B, 7.62B, 32.8B) match
# the published sizes.
QWEN25 = {
    "0.5B": dict(hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2, vocab=151936, tied=True),
    "1.5B": dict(hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2, vocab=151936, tied=True),
    "7B": dict(hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064, tied=False),
    "32B": dict(hidden=5120, intermediate=27648, layers=64, heads=40, kv_heads=8, vocab=152064, tied=False),
}
LORA_TARGETS = 7  # q, k, v, o, gate, up, down: every linear layer of a block (model.lora_target's default)


@dataclass(frozen=True)
class Shape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = True

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    def block_params(self) -> int:
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        return 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h  # q, o; k, v; gate, up, down; two norms

    def params(self) -> int:
        return self.layers * self.block_params() + self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def lora_params(self, r: int) -> int:
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        fan = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]  # (in, out) of the 7 block linears
        return self.layers * sum(r * (a + b) for a, b in fan)


def block_per_token(s: Shape, *, lora_r: int = 0) -> int:
    """Activation elements one block keeps per token (see `act_per_token`)."""
    h = s.hidden
    return 8 * h + 2 * s.kv_dim + 4 * s.intermediate + s.heads + 2 + (LORA_TARGETS * lora_r - 2 * h if lora_r else 0)


def act_per_token(s: Shape, *, checkpointing: bool, lora_r: int = 0) -> int:
    """Activation elements autograd keeps per token (HF Llama / Qwen2 blocks, SDPA attention).

    A block keeps 8h + 2 kv + 4i + heads + 2: each RMSNorm its input, the normalised input and its product with the
    gain (3h + 1, twice), attention the rotated queries and keys, the values, its output and the log-sum-exp
    (2h + 2 kv + heads), the MLP gate, up, silu(gate) and their product (4i). Outside the blocks: the final norm and
    the rotary tables (3h + head_dim + 3). With LoRA the gains are frozen (2h less per block, the final norm's 3h + 3
    gone) and each adapted linear keeps A x (r). Counted on these models with `torch.autograd.graph.
    saved_tensors_hooks` (tests/train/test_memory_formula.py). Checkpointing keeps each block's input (h) and,
    during the backward pass, one block's set at a time."""
    h = s.hidden
    block = block_per_token(s, lora_r=lora_r)
    outside = h // s.heads + (0 if lora_r else 3 * h + 3)
    return (s.layers * h + block if checkpointing else s.layers * block) + outside


def step_memory(s: Shape, *, algo: str, lora_r: int = 0, checkpointing: bool = False, shards: int = 1,
                w: int = 4, a: int = 4, tokens: int, rollout_rows: int, rollout_len: int,
                gathered_rollout: bool = False) -> dict[str, float]:
    """Bytes per process of one step (`algo` "ppo": critic and reference; "grpo": reference; "sft": neither, no
    rollout), by component and the peak (see the module docstring). `tokens`: this process's update minibatch
    tokens; the rollout holds `rollout_rows` sequences of `rollout_len` tokens, decoded (with `shards > 1`) from a
    whole copy of the policy when `gathered_rollout`.

    Within an update, gradients and activations mostly do not coexist (the backward pass frees each block's
    activations as it fills that block's gradients), so the phase counts the larger of the two; with checkpointing
    the block being recomputed also holds the gradients of its activations (one more block's set)."""
    p = s.params()
    trainable = s.lora_params(lora_r) if lora_r else p
    critic_p = p - (0 if s.tied else s.vocab * s.hidden) + s.hidden + 1  # no LM head; a 1-output value head
    critic_trainable = s.lora_params(lora_r) + s.hidden + 1 if lora_r else critic_p
    gathered = s.block_params() * w if shards > 1 else 0  # FSDP2: one block all-gathered at a time
    recomputed = block_per_token(s, lora_r=lora_r) if checkpointing else 0
    out = {
        "weights": (p + (trainable if lora_r else 0)) * w / shards,
        "gradients": trainable * w / shards,
        "optimizer": 8 * trainable / shards,
        "reference": 0 if lora_r or algo == "sft" else p * w / shards,
        "critic": 0.0,
        "kv_cache": 0 if algo == "sft" else 2 * s.layers * s.kv_dim * a * rollout_rows * rollout_len,
        "activations": tokens * (act_per_token(s, checkpointing=checkpointing, lora_r=lora_r) + recomputed) * a,
        "logits": 4 * tokens * s.vocab * 4,
    }
    critic_grads = 0.0
    if algo == "ppo":
        critic_grads = critic_trainable * w / shards
        own_base = 0 if lora_r and shards == 1 else critic_p - (s.hidden + 1 if lora_r else 0)  # LoRA: frozen
        resident = (own_base + (critic_trainable if lora_r else 0)) * w / shards + 8 * critic_trainable / shards
        out["critic"] = resident + critic_grads
    resident = out["weights"] + out["optimizer"] + out["reference"] + out["critic"] - critic_grads + gathered
    out["decoding_copy"] = (p + (trainable if lora_r else 0)) * w if gathered_rollout and shards > 1 else 0
    phases = [out["kv_cache"] + out["decoding_copy"], max(critic_grads, out["activations"]),
              max(out["gradients"], out["activations"] + out["logits"])]
    out["peak"] = resident + max(phases)
    return out
