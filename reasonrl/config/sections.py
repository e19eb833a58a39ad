"""The config sections: one dataclass per `[section]`, a docstring under every field (its meaning, unit and the
paper's value where there is one). Loading and overrides live in `load.py`, range checks in `checks.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reasonrl.config.papers import PairwiseConfig, SwirlConfig

SYNTHETIC_LEVELS = (1, 2, 3, 4, 5)  # the synthetic world's difficulty levels (`tasks.synthetic.LEVELS`, one each)


@dataclass
class ModelConfig:
    path: str = ""
    """Local Hugging Face model directory. Empty: build a fresh model from `preset` (the embedded default)."""
    tokenizer_path: str = ""
    """Tokenizer directory; empty means `path`, or, for a fresh model, a tokenizer built from the synthetic world."""
    preset: str = "tiny"
    """Size preset for a fresh model: `tiny` (~1M params), `small` (~10M) or `medium` (~99M); see
    `reasonrl.model.tiny.PRESETS`."""
    arch: Literal["llama", "qwen2"] = "llama"
    """Architecture of a fresh model."""
    init_seed: int = 0
    """Seed for a fresh model's initial weights."""
    lora_r: int = 0
    """LoRA rank (peft; Hu et al. 2021, arXiv 2106.09685), 0 = off: r > 0 freezes the base `path` and trains rank-r
    adapters (SFT, RL; the PPO critic its own, with its value head, as in verl). The RL reference is then the policy
    with adapters off, not a copy; checkpoints hold the adapter (peft's format); `reasonrl export --merge` merges."""
    lora_alpha: float = 16.0
    """LoRA scale numerator: the update is (alpha / r) B A."""
    lora_dropout: float = 0.0
    """Dropout on the adapters' input, in SFT only (RL runs without dropout: `train/rl.py`)."""
    lora_target: list[str] = field(default_factory=list)
    """Linear layers to adapt, as peft's `target_modules` (name suffixes: `q_proj`, ...); empty: every block linear."""
    gradient_checkpointing: bool = False
    """Recompute each decoder block in the backward pass instead of keeping its activations (HF's own mechanism,
    non-reentrant), for the policy and the critic: the same gradients, less peak memory."""


@dataclass
class DataConfig:
    source: str = "synthetic"
    """`synthetic` (the embedded world), a name from ../shared/data (gsm8k, math500, aime24, amc23), a JSONL path, a
    parquet / JSON / CSV / Arrow file, a `Dataset.save_to_disk` or `DatasetDict.save_to_disk` directory, or
    `hub:owner/name[:config]` (the only source that may download; `HF_DATASETS_OFFLINE` is honoured)."""
    test_source: str = ""
    """Where held-out problems come from when not from `source`'s own test split (any value `source` takes). A file
    has no test split: without this, held-out accuracy is measured on the training file (a warning says so)."""
    split: str = "train"
    """Split of a `DatasetDict` directory or hub dataset to train on (a file is one table, read whole)."""
    test_split: str = "test"
    """Split of held-out problems: of `test_source` when set, else of `source`, where those have splits."""
    prompt_field: str = "prompt"
    """Field (column) holding the prompt: text, or a list of chat messages `{role, content}` (verl's `prompt`)."""
    messages_field: str = "messages"
    """Chat column used as the prompt when there is no `prompt_field` (TRL's conversational format): rendered by
    the tokenizer's chat template; a final assistant turn is the response."""
    response_field: str = "response"
    """Field holding the gold response (SFT target)."""
    answer_field: str = "answer"
    """Field holding the final answer (verifier target); a dotted path reads a struct (`reward_model.ground_truth`)."""
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
    reward: bool = False
    """Also score every sample with the `[reward]` section's reward and report its mean beside accuracy (on by
    itself when `reward.kinds` is set; `reasonrl eval --reward KIND`)."""


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
    """The reward: a built-in kind (`reasonrl.reward.KINDS`: `verifier`, answer checking; paper kinds add their
    own), or your function, `"path/to/file.py:name"` (relative to the working directory) or `"package.module:name"`:
    a builder, a TRL-style or a verl-style function, told apart by its signature (docs/rewards.md)."""
    kinds: list[str] = field(default_factory=list)
    """Several rewards at once, each a value `kind` takes, e.g. `["verifier", "rewards.py:format_bonus"]`: the score
    is their weighted sum, each is logged as `reward/<name>`; `correct` comes from those that report it. Empty: the
    one `kind`."""
    weights: list[float] = field(default_factory=list)
    """Weights of `kinds` (or of `kind`), one each; empty: all 1."""
    workers: int = 0
    """Processes that run a plain (TRL- or verl-style) reward function, one call per completion, each call given
    `timeout_s`; 0: in this process, no timeout."""
    timeout_s: float = 60.0
    """With `workers`: seconds one call of a plain reward function may take before its worker is stopped."""
    on_error: float | str = "fail"
    """A plain reward function that raises (or, with `workers`, times out) during training: `"fail"` stops the run;
    a number scores that call's completions with it (counted in `reward/errors`). The dry call before a run
    always fails."""
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
class LogConfig:
    run_dir: str = "runs/default"
    """Directory for checkpoints, metrics.jsonl, plots and the resolved config."""
    progress: bool = True
    """Show progress bars."""
    plots: bool = True
    """Write plots under `run_dir/plots/`."""
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = field(default_factory=list)
    """Trackers that also get every numeric metric of `metrics.jsonl` (same names and steps) and the resolved config
    (`reasonrl.train.trackers`; `pip install -e .[tracking]`). metrics.jsonl and the plots are always written."""
    project: str = ""
    """W&B project and MLflow experiment; empty: the trackers' defaults ($WANDB_PROJECT, $MLFLOW_EXPERIMENT_NAME)."""


@dataclass
class DistConfig:
    strategy: Literal["ddp", "fsdp2"] = "ddp"
    """Data-parallel wrapping under torchrun; ignored on one process. "ddp": every process holds the whole model
    and its optimizer state. "fsdp2": `fully_shard` per decoder layer, then the root; parameters, gradients and
    optimizer state are split over the processes (RL: policy, critic and reference model; the reference has no
    gradients or optimizer state)."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Process-group backend; auto picks nccl on CUDA, gloo otherwise."""
    rollout_params: Literal["gathered", "lockstep"] = "gathered"
    """Under fsdp2 on several processes: how the sampler (RL rollouts, held-out evaluation) decodes with sharded
    parameters. "gathered": the full parameters are gathered once per rollout into a plain copy of the model that
    decodes with no communication (the built-in decode step, shared prefixes and `rollout.compile` apply) and is
    freed afterwards: fast, and one full copy of the parameters per process during the rollout, which a 7B model
    (15 GB in bf16, 30 GB in fp32) fits beside its shards on an 80 GB GPU: the default (TRL gathers ZeRO-3
    parameters for generation the same way). "lockstep": the sharded model decodes itself, all-gathering each
    layer at every step, and every process keeps stepping (a finished one on a discarded row) until every process
    is done (HF generate's `synced_gpus`): only the root module (embeddings, LM head) and the layer being run
    unsharded, for models whose full parameters do not fit one device; slower, since the parameters cross the
    network at every token (2.6x the gathered rollout's time on 2 CPU processes: docs/benchmarks.md)."""
    lockstep_sync_every: int = 1
    """Under "lockstep": decode steps between the all-reduces of the "every process is done" flag. k > 1 makes k
    times fewer of these small all-reduces and up to k - 1 extra (discarded) steps at the end of a rollout."""


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
