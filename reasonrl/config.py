"""Configuration: one dataclass per section, loaded from TOML and overridden by `--section.key=value`.

Every field has a docstring-style comment. Unknown sections or keys, wrong types, a missing file and
malformed TOML raise `UserError` naming the file and the line or key; the CLI turns that into one line on
stderr and exit code 2. The resolved config is written to the run directory (`write_resolved`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reasonrl.errors import UserError, warn


@dataclass
class ModelConfig:
    path: str = ""
    """Local Hugging Face model directory. Empty: build a fresh model from `preset` (the embedded default)."""
    tokenizer_path: str = ""
    """Tokenizer directory; empty means `path`, or, for a fresh model, a tokenizer built from the synthetic world."""
    preset: str = "tiny"
    """Size preset for a fresh model: `tiny` (~1M params) or `small` (~10M); see `reasonrl.model.tiny.PRESETS`."""
    arch: Literal["llama", "qwen2"] = "llama"
    """Architecture of a fresh model."""
    init_seed: int = 0
    """Seed for a fresh model's initial weights."""


@dataclass
class DataConfig:
    source: str = "synthetic"
    """`synthetic` (the embedded world), a name from ../shared/data (gsm8k, math500, aime24, amc23) or a JSONL path."""
    test_source: str = ""
    """Where held-out problems come from when not from `source`'s own test split (any value `source` takes). A JSONL
    `source` has no test split: without this, held-out accuracy is measured on the training file (a warning says so)."""
    prompt_field: str = "prompt"
    """JSONL field holding the prompt."""
    response_field: str = "response"
    """JSONL field holding the gold response (SFT target)."""
    answer_field: str = "answer"
    """JSONL field holding the final answer (verifier target)."""
    num_train: int = 20000
    """Synthetic world: number of training problems."""
    num_test: int = 200
    """Synthetic world: number of held-out problems."""
    difficulty: int = 2
    """Synthetic world: difficulty level 1-5 (more steps, larger numbers)."""
    seed: int = 0
    """Synthetic world: generator seed."""
    slip_fraction: float = 0.05
    """Synthetic world: fraction of traces with a deliberate slip followed by `Wait,` and a correction."""
    alt_fraction: float = 0.05
    """Synthetic world: fraction of traces that abandon a first attempt with `Alternatively,`."""
    max_len: int = 256
    """Maximum tokens of prompt + response for SFT; longer examples are truncated from the right."""
    prompt_template: str = ""
    """Python format string with `{prompt}`; empty uses the tokenizer's chat template."""
    max_line_bytes: int = 1_000_000
    """A JSONL line longer than this is an error (one huge line would stall tokenising and sampling)."""


@dataclass
class TrainConfig:
    steps: int = 300
    """Optimizer steps."""
    batch_size: int = 32
    """Sequences per micro-batch (per process)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm); 0 disables clipping."""
    seed: int = 0
    """Seed for data order, dropout and sampling."""
    dtype: Literal["fp32", "bf16"] = "fp32"
    """Compute dtype: fp32, or bf16 autocast (weights and optimizer state stay fp32)."""
    eval_every: int = 100
    """Evaluate held-out accuracy every this many steps (0: only at the end)."""
    eval_examples: int = 200
    """Held-out problems per evaluation."""
    eval_samples: int = 1
    """Samples per held-out problem; `heldout_acc` is their mean (avg@k, the VAPO/DAPO protocol with k = 32)."""
    eval_temperature: float = 0.0
    """Held-out sampling temperature; 0 = greedy. VAPO and DAPO evaluate at 1.0 with top_p 0.7."""
    eval_top_p: float = 1.0
    """Held-out nucleus sampling threshold (VAPO/DAPO: 0.7)."""
    save_every: int = 100
    """Write a resumable checkpoint every this many steps (0: only at the end)."""
    early_stop_patience: int = 0
    """RL: stop once held-out mean length (`heldout_len`) has not fallen below its best for this many evaluations
    in a row (0: off). Concise RL's optional stop for its length-cutting phase 2 (arXiv 2504.05185; the paper
    gives no rule, so patience is ours); evaluations during value pretraining do not count."""
    log_checkpoints: int = 0
    """Additionally save this many log-spaced checkpoints (for reflection probes across training)."""
    resume: bool = False
    """Continue from the newest checkpoint in the run directory (`--resume`); its config.json must agree, except
    for the keys in `reasonrl.train.rundir.SAFE_TO_CHANGE`."""
    overwrite: bool = False
    """Start a fresh run in a run directory that already holds one, deleting the old run (`--overwrite`)."""


@dataclass
class OptimConfig:
    name: Literal["adamw", "muon", "dion"] = "adamw"
    """Optimizer for matrix parameters; the rest (embeddings, LM head, norms, biases) always use AdamW."""
    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.0
    """Decoupled weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_steps: int = 20
    """Linear warmup steps."""
    schedule: Literal["cosine", "constant"] = "cosine"
    """Learning-rate schedule after warmup."""
    min_lr_ratio: float = 0.1
    """Cosine floor as a fraction of `lr`."""
    scalar_lr: float = 0.0
    """Learning rate of the AdamW groups under Muon/Dion; 0 means `lr`."""
    mu: float = 0.95
    """Muon / Dion momentum."""
    rank_fraction: float = 1.0
    """Dion rank as a fraction of min(m, n)."""
    rank_multiple: int = 1
    """Round the Dion rank up to a multiple of this."""
    qr_method: Literal["qr", "cqr", "rcqr"] = "rcqr"
    """Dion orthonormalisation: plain QR, Cholesky-QR or randomised Cholesky-QR."""
    ns_steps: int = 5
    """Muon Newton-Schulz iterations."""
    nesterov: bool = True
    """Muon Nesterov momentum."""
    state_dtype: Literal["fp32", "bf16"] = "fp32"
    """Dtype of Muon / Dion momentum state."""
    dion_sync: bool = True
    """Under torchrun with DDP, Dion skips the gradient all-reduce and averages its thin P / R factors instead
    ((m + n) r numbers per matrix instead of m n); SFT and the RL trainers' policy (the critic keeps DDP)."""


@dataclass
class RolloutConfig:
    backend: Literal["hf", "vllm"] = "hf"
    """Sampling backend: the built-in engine, or vLLM (GPU, optional dependency)."""
    temperature: float = 1.0
    """Sampling temperature; 0 means greedy."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    top_k: int = 0
    """Top-k sampling (0 disables)."""
    max_new_tokens: int = 128
    """Maximum generated tokens per sample."""
    num_samples: int = 1
    """Samples per prompt (group size)."""
    stop: list[str] = field(default_factory=list)
    """Stop strings besides the EOS token."""
    batch_size: int = 64
    """Sequences generated together."""
    compile: bool = False
    """torch.compile the built-in engine's decode step (rollout/compiled.py); off: on CPU it does not pay yet
    (docs/benchmarks.md)."""
    share_prefix: bool = True
    """With num_samples > 1, keep each prompt's keys and values once and let its samples attend over them
    (shared-prefix decoding, rollout/fast_step.py; not under `compile`); false copies them to every sample."""


@dataclass
class EvalConfig:
    num_samples: int = 1
    """Samples per problem (mean@N and pass@k)."""
    pass_k: list[int] = field(default_factory=lambda: [1])
    """k values for unbiased pass@k."""
    max_examples: int = 0
    """Evaluate only the first N problems (0: all)."""
    split: Literal["train", "test"] = "test"
    """Which split of a named dataset to evaluate."""


@dataclass
class RLConfig:
    """One section for PPO / VAPO (`algo = "ppo"`) and GRPO / DAPO (`algo = "grpo"`); recipes in configs/."""

    algo: Literal["ppo", "grpo"] = "ppo"
    """Trainer family: PPO with a critic (PPO, VAPO) or critic-free group advantages (GRPO, DAPO)."""
    prompts_per_step: int = 8
    """Prompts sampled per rollout step (all processes together); each gets `rollout.num_samples` responses."""
    ppo_epochs: int = 1
    """Passes over each rollout batch."""
    minibatch_size: int = 64
    """Sequences per gradient update (all processes together)."""
    clip_low: float = 0.2
    """PPO clip epsilon below 1 (DAPO Eq. 10)."""
    clip_high: float = 0.2
    """PPO clip epsilon above 1; 0.28 is DAPO/VAPO's Clip-Higher."""
    share_prompt: bool = True
    """Teacher-force each distinct prompt once per minibatch and let its samples attend to it (same numbers,
    fewer FLOPs for groups). Under DDP the update's passes then run on the bare model and the gradients are
    averaged with one all-reduce per bucket instead of DDP's hooks (`rl.training_module`)."""
    dual_clip: float = 0.0
    """Dual-clip bound c > 1 on negative-advantage tokens (Ye et al. 2020; not in VAPO/DAPO); 0 = off."""
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = "seq-mean-token-mean"
    """Policy-loss normalisation: token-mean is DAPO/VAPO's token-level loss, seq-mean-token-mean is sample level."""
    gamma: float = 1.0
    """Discount (VAPO and DAPO use 1)."""
    lam_policy: float = 0.95
    """GAE lambda of policy advantages (ignored when `length_adaptive`)."""
    lam_critic: float = 0.95
    """GAE lambda of critic targets; 1.0 is VAPO's decoupled GAE."""
    length_adaptive: bool = False
    """Per-sequence policy lambda = 1 - 1/(alpha * length) (VAPO Eq. 5)."""
    alpha: float = 0.05
    """Length-adaptive GAE alpha (VAPO: 0.05)."""
    whiten_advantages: bool = True
    """PPO: normalise advantages over the batch's response tokens (the VAPO paper is silent; verl does)."""
    pos_nll_coef: float = 0.0
    """Weight mu of the positive-example NLL loss (VAPO Eq. 10: 0.1)."""
    value_pretrain_steps: int = 0
    """Critic-only rollout steps on the frozen initial policy with Monte-Carlo returns (VAPO: 50)."""
    critic_lr: float = 2e-3
    """Critic learning rate (AdamW). VAPO uses twice the actor's (1e-6 / 2e-6); a critic much faster than the
    policy overfits each rollout batch, and its value differences then bias the GAE advantages."""
    critic_path: str = ""
    """Initialise the critic from this HF directory (a saved critic); empty: from the policy's backbone."""
    critic_context_template: str = "{prompt}\nReference: {context}"
    """PPO: the critic's prompt when the reward gives each response a critic context (`Scored.critic_context`, e.g.
    Pairwise-RL's anchor): {prompt} is the task prompt, {context} the text; then formatted like the policy's prompt
    (`data.prompt_template` or the chat template) and followed by the same response tokens."""
    value_clip: float = 0.0
    """PPO value clipping range; 0 disables (the VAPO paper is silent)."""
    kl_coef: float = 0.0
    """KL penalty against the frozen initial policy (0: no reference model; DAPO and VAPO use none)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """Per-token KL estimator for the penalty."""
    kl_in_reward: bool = False
    """PPO: subtract `kl_coef * KL_t` from each token's reward before GAE (RLHF PPO; Concise RL's released recipe,
    k1, 0.01) instead of adding `kl_coef * KL` to the loss."""
    group_std: bool = True
    """GRPO: divide group-centred rewards by the group std (False: Dr. GRPO-style mean only)."""
    dynamic_sampling: bool = False
    """DAPO: keep only groups with 0 < #correct < G, re-sampling until the batch is full."""
    dynamic_sampling_on: Literal["acc", "reward"] = "acc"
    """What a kept group must vary in: accuracy (DAPO's 0 < #correct < G) or reward (verl's std > 0 rule)."""
    max_sample_rounds: int = 4
    """Dynamic sampling: at most this many rollout rounds per step; then train on what was kept."""
    overlong_penalty: bool = False
    """DAPO Eq. 13 soft overlong punishment added to the reward."""
    overlong_cache: int = 16
    """DAPO L_cache in tokens (L_max is `rollout.max_new_tokens`)."""
    recompute_old_logp: bool = False
    """Recompute old log-probs by teacher forcing (no gradient, eval mode, sampling temperature) instead of taking
    the sampler's; they agree within 1e-4 in fp32, so this matters for samplers that differ (bf16, vLLM)."""


@dataclass
class RewardConfig:
    """How responses are scored: one plug-in interface for every trainer (`reasonrl.reward`)."""

    kind: str = "verifier"
    """Reward plug-in (`reasonrl.reward.KINDS`): `verifier` (answer checking); paper kinds add their own."""
    correct: float = 1.0
    """Reward of a verified-correct answer."""
    wrong: float = -1.0
    """Reward of a wrong answer (Concise RL: -0.5)."""
    no_answer: float = -1.0
    """Reward of a response without an extractable answer."""
    length_start: int = 1000
    """`length_penalty` kind: tokens where the linear length penalty starts (Concise RL's released code: 1000)."""
    length_end: int = 1400
    """`length_penalty` kind: tokens where the penalty reaches `length_penalty` and stays (released code: 1400)."""
    length_penalty: float = -1.0
    """`length_penalty` kind: the penalty at and beyond `length_end`, added to the verifier reward (released: -1)."""


@dataclass
class SwirlConfig:
    """SWiRL (arXiv 2504.04736, `reasonrl.swirl`): the toy tool-use worlds, judges and multi-step episodes."""

    task: Literal["qa", "math"] = "qa"
    """Toy world: 2-hop QA over a generated knowledge base with search, or word problems with the calculator."""
    judge: str = "program"
    """Process / outcome judge: `program` (the toy worlds' checkers) or a local HF model directory (LLM prompts)."""
    judge_noise: float = 0.0
    """Probability that a programmatic judge's label is flipped (seed-papers.md E.6: inject some label noise)."""
    max_steps: int = 0
    """Most steps per episode; 0 = the paper's 5 for QA and 10 for math."""
    step_tokens: int = 40
    """Most new tokens per step (one chain of thought and one action)."""
    kb_people: int = 120
    """People (articles) in the generated knowledge base."""
    kb_seed: int = 0
    """Knowledge-base generator seed."""
    hotpotqa: bool = True
    """Also index the HotpotQA sample's paragraphs (../shared/data/hotpotqa) in the search corpus."""
    result_chars: int = 400
    """A search result (one article) is cut to this many characters."""
    math_difficulty: int = 1
    """Synthetic-world difficulty of the math word problems."""


@dataclass
class PairwiseConfig:
    """Pairwise-RL (arXiv 2504.04950, `reasonrl.pairwise`): judges, `reasonrl rm-train`, the `pairwise` reward.
    The paper's text was not available (notes B.3 [I]); its open details are the options below."""

    data: str = "synthetic"
    """rm-train pairs: `synthetic` (the preference world, `reasonrl.pairwise.world`) or a JSONL path with
    prompt / chosen / rejected fields (the last `num_test` lines are held out)."""
    num_train: int = 4000
    """Synthetic preference world: training pairs."""
    num_test: int = 500
    """Held-out pairs (synthetic: drawn from the world's test split; JSONL: the file's last lines)."""
    seed: int = 0
    """Synthetic preference world: generator seed."""
    label_scale: float = 3.0
    """Synthetic labeler: P(A > B) = sigmoid(label_scale (u_A - u_B)) (notes B.7's k)."""
    offset: float = 1.0
    """Synthetic labeler: the prompt-dependent offset b(x) on re-checks for prompts about OFFSET_ITEMS."""
    recheck_cost: float = 0.5
    """Synthetic world: hidden quality lost by a redundant `Wait,` re-check."""
    hidden_errors: float = 0.0
    """Synthetic world: fraction of wrong candidates whose error is a carried step error (else a visible wrong box)."""
    loss: Literal["pair", "vocab"] = "pair"
    """rm-train (generative): cross-entropy of the answer token over {YES, NO} only, or over the whole vocabulary
    (the paper's choice is not known to us, notes B.3 [I]; "pair" learns faster at toy scale)."""
    judge: Literal["generative", "bt"] = "generative"
    """rm-train: the generative YES/NO judge, or the Bradley-Terry scalar baseline."""
    swap: bool = True
    """rm-train (generative): train on every pair in both orders with flipped labels (notes B.3 [I])."""
    chosen_first: float = 0.75
    """rm-train without `swap`: each pair is shown once, the chosen response first with this probability (a
    position-biased collection; 1.0 = always first, as a (prompt, chosen, rejected) file reads)."""
    template: str = "{prompt}\nA: {a}\nB: {b}\nA better: "
    """Generative judge prompt; the next token is `yes` or `no` (their first tokens must differ)."""
    yes: str = "YES"
    """Answer string meaning A is better (its first token is read); e.g. " Yes" for a real HF LM."""
    no: str = "NO"
    """Answer string meaning B is better."""
    max_length: int = 512
    """Judge input tokens; a longer input keeps its end."""
    num_bins: int = 10
    """Equal-width bins of the ECE and the reliability plot."""
    judge_path: str = ""
    """`pairwise` reward: a judge directory written by rm-train (`<run_dir>/judge`)."""
    anchor: Literal["reference", "best_of_n", "sample", "none"] = "reference"
    """`pairwise` reward: the anchor y* of s(y, y*): the record's reference answer (`anchor_field`), the judge's
    best of `best_of_n` samples of the initial policy, another sample of the same prompt (self-play), or `none`
    (a Bradley-Terry judge's scalar r(x, y): the classic RLHF reward)."""
    anchor_field: str = "response"
    """Record field holding the reference answer (the synthetic world's gold response is `response`)."""
    best_of_n: int = 4
    """`best_of_n` anchor: reference-policy samples per prompt (sampled once per prompt, then cached)."""
    num_anchors: int = 1
    """`sample` anchor: judge each response against this many other samples of its prompt and average s over them
    (notes B.6 leave open "whether multiple anchors are averaged"; 1 = one anchor). Needs rollout.num_samples >
    num_anchors; the other anchors are one per prompt."""
    debias: bool = True
    """`pairwise` reward: s = 1/2 (p(y > y*) + 1 - p(y* > y)) (both orders in one forward pass); False: p(y > y*)."""
    center: bool = True
    """`pairwise` reward: use s - 1/2 (notes B.3: "optionally centred")."""
    scale: float = 2.0
    """`pairwise` reward: multiply the (centred) score; 2 maps s in [0, 1] to [-1, 1] like the verifier's +-1."""
    judge_batch_size: int = 64
    """Pairs per judge forward pass."""
    critic_sees_anchor: bool = True
    """`pairwise` reward under PPO: the critic reads the anchor beside the prompt (`rl.critic_context_template`), a
    value V(x, y*, y_<t). Notes B.3 [I] read the paper's "value function consistency" this way; the paper's value
    model is an open question (B.6), hence the switch. No effect with `anchor = "none"` (there is no anchor)."""


@dataclass
class LogConfig:
    run_dir: str = "runs/default"
    """Directory for checkpoints, metrics.jsonl, plots and the resolved config."""
    progress: bool = True
    """Show progress bars."""
    plots: bool = True
    """Write plots under `run_dir/plots/`."""


@dataclass
class DistConfig:
    strategy: Literal["ddp", "fsdp2"] = "ddp"
    """Data-parallel wrapping under torchrun; ignored on one process."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Process-group backend; auto picks nccl on CUDA, gloo otherwise."""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    pairwise: PairwiseConfig = field(default_factory=PairwiseConfig)
    swirl: SwirlConfig = field(default_factory=SwirlConfig)
    log: LogConfig = field(default_factory=LogConfig)
    dist: DistConfig = field(default_factory=DistConfig)


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Return `value` coerced to type `tp` (int -> float only) or raise UserError naming `where`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(c) for c in typing.get_args(tp))
            raise UserError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_value(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise AssertionError(f"{where}: union types are not supported in config dataclasses")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float, str) and (not isinstance(value, tp) or isinstance(value, bool)):
        raise UserError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(cfg: Config, section: str, key: str, value: Any, where: str) -> None:
    sections = _field_types(Config)
    if section not in sections:
        raise UserError(f"{where}: unknown section [{section}] (known: {', '.join(sections)})")
    sec = getattr(cfg, section)
    keys = _field_types(type(sec))
    if key not in keys:
        raise UserError(f"{where}: unknown key {section}.{key} (known: {', '.join(keys)})")
    setattr(sec, key, _check_value(value, keys[key], f"{where}: {section}.{key}"))


def _parse_override_value(text: str, tp: Any) -> Any:
    """Interpret the text of `--section.key=value` for a field of type `tp`."""
    if tp is str or typing.get_origin(tp) is Literal and all(isinstance(a, str) for a in typing.get_args(tp)):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # let the type check report it with the key named


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *,
                uses: Collection[str] | None = None) -> Config:
    """Build a Config from defaults, then the TOML file at `path`, then `--section.key=value` overrides.
    `uses`: the sections the calling command reads; a [section] of the file outside it gets a one-line warning."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p}: config file not found")
        raw = p.read_bytes()
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise UserError(f"{p}: line {line}: not UTF-8 text (byte {raw[e.start]:#04x}); save the file as UTF-8") \
                from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{p}: malformed TOML: {e}") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise UserError(f"{p}: top-level key {section!r} must be a [section] table")
            for key, value in table.items():
                _apply(cfg, section, key, value, str(p))
    for item in overrides or []:
        if not item.startswith("--") or "=" not in item or "." not in item.split("=", 1)[0]:
            raise UserError(f"command line: override {item!r} must look like --section.key=value")
        name, text = item[2:].split("=", 1)
        section, key = name.split(".", 1)
        sections = _field_types(Config)
        tp = _field_types(type(getattr(cfg, section))).get(key, str) if section in sections else str
        _apply(cfg, section, key, _parse_override_value(text, tp), "command line")
    where = "command line" if path is None else f"{path} (with command-line overrides)" if overrides else str(path)
    _check_ranges(cfg, where)
    if path is not None and uses is not None:
        unused = [s for s in data if s not in uses]
        if unused:
            warn(f"{path}: this command does not use section(s) {', '.join(f'[{s}]' for s in unused)}")
    return cfg


def _check_ranges(cfg: Config, where: str) -> None:
    """Values whose type is right but whose range is not (one line, exit 2, before anything runs)."""
    t, r = cfg.train, cfg.rl
    checks = [
        (t.eval_samples >= 1, f"train.eval_samples must be >= 1, got {t.eval_samples}"),
        (t.eval_temperature >= 0, f"train.eval_temperature must be >= 0 (0 = greedy), got {t.eval_temperature}"),
        (0 < t.eval_top_p <= 1, f"train.eval_top_p must lie in (0, 1], got {t.eval_top_p}"),
        (r.dual_clip == 0 or r.dual_clip > 1, f"rl.dual_clip must be 0 (off) or > 1, got {r.dual_clip}"),
        (0 <= r.clip_low < 1 and r.clip_high >= 0, f"rl.clip_low must lie in [0, 1) and rl.clip_high be >= 0, "
                                                    f"got {r.clip_low} / {r.clip_high}"),
    ]
    for key in ("train.steps", "train.batch_size", "train.grad_accum", "train.eval_examples", "rollout.batch_size",
                "rollout.num_samples", "data.num_train", "data.max_len", "data.max_line_bytes", "eval.num_samples"):
        value = getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1])
        checks.append((value >= 1, f"{key} must be >= 1, got {value}"))
    for key in ("train.eval_every", "train.save_every", "train.early_stop_patience", "eval.max_examples",
                "data.num_test"):
        value = getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1])
        checks.append((value >= 0, f"{key} must be >= 0, got {value}"))
    for key, value in (("optim.lr", cfg.optim.lr), ("rl.critic_lr", r.critic_lr)):
        checks.append((math.isfinite(value) and value > 0, f"{key} must be a finite number > 0, got {value}"))
    from reasonrl.tasks.synthetic import LEVELS  # here: the world's levels are defined beside its generator

    levels = ", ".join(str(level) for level in sorted(LEVELS))
    checks.append((cfg.data.difficulty in LEVELS,
                   f"data.difficulty must be one of {levels}, got {cfg.data.difficulty}"))
    checks.append((not (t.resume and t.overwrite), "--resume and --overwrite (train.resume, train.overwrite) "
                   "contradict each other: continue the run, or replace it"))
    from reasonrl.reward.base import KINDS  # here, not at the top: reward.base imports this module

    known = ", ".join(sorted(KINDS))
    checks.append((cfg.reward.kind in KINDS, f"reward.kind {cfg.reward.kind!r} is not one of {known}"))
    checks.append((not r.overlong_penalty or 0 < r.overlong_cache <= cfg.rollout.max_new_tokens,
                   f"rl.overlong_cache must lie in [1, rollout.max_new_tokens = {cfg.rollout.max_new_tokens}] with "
                   f"rl.overlong_penalty on, got {r.overlong_cache}"))
    checks.append((not r.kl_in_reward or (r.algo == "ppo" and r.kl_coef > 0),
                   "rl.kl_in_reward needs rl.algo = 'ppo' (token rewards feed GAE) and rl.kl_coef > 0"))
    checks.append(("{prompt}" in r.critic_context_template and "{context}" in r.critic_context_template,
                   f"rl.critic_context_template must contain {{prompt}} and {{context}}, got "
                   f"{r.critic_context_template!r}"))
    checks.append((0 <= cfg.reward.length_start < cfg.reward.length_end,
                   f"reward.length_start must lie in [0, reward.length_end), got {cfg.reward.length_start} / "
                   f"{cfg.reward.length_end}"))
    for ok, message in checks:
        if not ok:
            raise UserError(f"{where}: {message}")


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def write_resolved(cfg: Config, run_dir: str | Path) -> Path:
    """Write the resolved config as JSON (exact types) to `run_dir/config.json`."""
    out = Path(run_dir) / "config.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    tmp.replace(out)
    return out


def from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """Inverse of `to_dict`, with the same checks as a TOML file."""
    cfg = Config()
    for section, table in data.items():
        for key, value in table.items():
            _apply(cfg, section, key, value, where)
    return cfg
