"""Code run by each of the 2 gloo ranks of test_rl_fsdp2.py (forked, localhost only), and the inputs both sides
build: a crafted policy whose rows stop at once after one prompt token, its data, the scenario configs.

`run(rank, world, port, out_dir, model_dir, data)` runs the real `grpo.train` / `ppo.train` under FSDP2 for
every scenario and saves `out_dir/rank{rank}.pt`: what each rank sampled (records, seed, batch), the batches its
updates trained on, counts of gathered copies and lockstep syncs, and with LoRA how the critic holds the policy's
frozen base; the run directories hold the models. Also test_rl_distributed's uneven-minibatch update (its worker's
scripted rollouts) under FSDP2 and under DDP, and the gathered copy of a sharded LoRA policy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import _rl_dist_worker as dw
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from reasonrl import dist
from reasonrl.algo.advantages import group_advantages
from reasonrl.config import load_config
from reasonrl.model import lora
from reasonrl.model.tokenizer import USER
from reasonrl.rollout import sampler
from reasonrl.train import fsdp, grpo, ppo, rl
from reasonrl.train.data import stream_indices

WORLD = 2
SEED = 3  # train.seed
G = 4  # samples per prompt
MAX_NEW = 8


def crafted_policy(tokenizer) -> LlamaForCausalLM:
    """A 2-layer Llama whose next token depends (almost) only on the current one: N(0, 1) embeddings dominate the
    residual stream (the layers start at std 0.02) and the untied head reads it. Its EOS row is twice the
    RMS-normalised embedding of the `<|user|>` token, so after `<|user|>` EOS has logit 2 x 16 = 32 against the
    others' ~N(0, 1.2): a row sampled after a prompt ending in `<|user|>` stops at its first token. After other
    tokens EOS gets 2 a.h ~ N(0, 8): some tokens end a row, others almost never, so lengths vary."""
    g = torch.Generator().manual_seed(0)
    v, h = len(tokenizer), 16
    config = LlamaConfig(vocab_size=v, hidden_size=h, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False,
                         max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        embed = torch.randn(v, h, generator=g)
        head = torch.randn(v, h, generator=g) * 0.3
        stop = embed[tokenizer.convert_tokens_to_ids(USER)]
        head[tokenizer.eos_token_id] = 2.0 * stop / stop.pow(2).mean().sqrt()
        model.model.embed_tokens.weight.copy_(embed)
        model.lm_head.weight.copy_(head)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def write_inputs(root: Path, tokenizer) -> tuple[Path, Path]:
    """The crafted model (with the tokenizer) and a 3-record JSONL whose first step gives rank 1 the record that
    ends in `<|user|>` (rank 1 takes the second of the step's 2 prompts, `rl.step_prompts`)."""
    model_dir = root / "model"
    crafted_policy(tokenizer).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    records = [{"prompt": "Compute 7 + 5.", "answer": "12"}, {"prompt": "Compute 3 * 4.", "answer": "12"}]
    rank1 = int(stream_indices(0, 2, num_examples=3, seed=SEED)[1])
    records.insert(rank1, {"prompt": f"What is 2 + 2?{USER}", "answer": "4"})
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return model_dir, data


def overrides(model_dir: Path, data: Path, run_dir: Path, algo: str, *extra: str) -> list[str]:
    """One step on 2 prompts x G samples, a KL term to the (sharded) reference, DAPO's overlong shaping over the
    whole length (score -L / 8: rows of different lengths get different advantages), every row in the one
    minibatch of each of 2 epochs (so the update does not depend on how rows are split into minibatches), a
    final held-out evaluation on the 3 records sampled twice each in chunks of one (rank 0 makes two calls,
    rank 1 one)."""
    return [f"--model.path={model_dir}", f"--data.source={data}", f"--data.test_source={data}",
            "--data.prompt_template={prompt}", f"--log.run_dir={run_dir}", "--log.progress=false", "--log.plots=false",
            f"--rl.algo={algo}", "--rl.prompts_per_step=2", f"--rollout.num_samples={G}",
            f"--rollout.max_new_tokens={MAX_NEW}", "--rollout.batch_size=2", "--rl.minibatch_size=8",
            "--rl.ppo_epochs=2", "--rl.kl_coef=0.05", "--rl.loss_agg=token-mean", "--rl.overlong_penalty=true",
            f"--rl.overlong_cache={MAX_NEW}", "--rl.value_pretrain_steps=0", "--train.steps=1",
            "--train.save_every=1", "--train.eval_every=0", "--train.eval_examples=3", "--train.eval_samples=2",
            "--train.eval_temperature=1.0", "--train.max_grad_norm=1.0", f"--train.seed={SEED}", "--optim.lr=0.01",
            "--optim.warmup_steps=0", "--optim.schedule=constant", "--rl.critic_lr=0.01", "--dist.strategy=fsdp2",
            *extra]


LORA = ["--model.lora_r=4", "--model.lora_alpha=8"]  # adapters on every block linear of the crafted policy
SCENARIOS = {  # name: (algo, extra overrides)
    "grpo_lockstep": ("grpo", ["--dist.rollout_params=lockstep"]),
    "grpo_gathered": ("grpo", ["--dist.rollout_params=gathered"]),
    "ppo_lockstep": ("ppo", ["--dist.rollout_params=lockstep", "--dist.lockstep_sync_every=3"]),
    "ppo_gathered": ("ppo", ["--dist.rollout_params=gathered"]),
    "grpo_dion": ("grpo", ["--optim.name=dion", "--optim.rank_fraction=0.5", "--optim.scalar_lr=0.01"]),
    # rank 0's first group has varied rewards (kept: rank 0 is full), rank 1's is all length 1 (dropped): rank 0
    # must sample the second round with rank 1 anyway, the sharded policy decoding on both
    "grpo_dynamic": ("grpo", ["--dist.rollout_params=lockstep", "--rl.dynamic_sampling=true",
                              "--rl.dynamic_sampling_on=reward", "--rl.max_sample_rounds=2"]),
    # LoRA: the reference is the sharded policy with its adapters off; the critic's adapters and value head sit over
    # its own shards of the policy's frozen base; checkpoints hold the adapters gathered whole
    "grpo_lora_lockstep": ("grpo", [*LORA, "--dist.rollout_params=lockstep"]),
    "grpo_lora_gathered": ("grpo", [*LORA, "--dist.rollout_params=gathered"]),
    "ppo_lora_lockstep": ("ppo", [*LORA, "--dist.rollout_params=lockstep", "--dist.lockstep_sync_every=3"]),
    "ppo_lora_gathered": ("ppo", [*LORA, "--dist.rollout_params=gathered", "--model.gradient_checkpointing=true"]),
}
LORA_RESUME = ("ppo", [*LORA, "--dist.rollout_params=gathered"])  # 2 steps vs 1 + resumed: "lora_full", "lora_resumed"


def run_train(algo: str, args: list[str]) -> dict:
    cfg = load_config(None, args)
    return (ppo if algo == "ppo" else grpo).train(cfg)


class Recorder:
    """Wraps `rl.rollout_and_score`, `rl.policy_update`, `rl.critic_update`, `dist.gathered_replica` and the
    sampler's `Decoder` in this process to keep their inputs (and the rollouts), note which models the updates
    found sharded, count the gathered copies, note the `lockstep` every decode loop ran with, and with LoRA note
    how the critic's frozen base relates to the policy's (`base_sharing`)."""

    def __init__(self):
        self.log: dict = {}
        self.critic = None
        for mod, name in ((rl, "rollout_and_score"), (rl, "policy_update"), (rl, "critic_update"),
                          (dist, "gathered_replica"), (sampler, "Decoder")):
            setattr(mod, name, self._wrap(name, getattr(mod, name)))

    def start(self) -> None:
        self.log = {"rollouts": [], "policy_batches": [], "critic_batches": [], "gathered": 0, "lockstep": [],
                    "sharded": {}}
        self.critic = None

    def _wrap(self, name: str, real):
        def wrapped(*args, **kwargs):
            out = real(*args, **kwargs)
            if name == "rollout_and_score":
                self.log["rollouts"].append({"records": args[2], "seed": args[4], "batch": out[0]})
            elif name in ("policy_update", "critic_update"):
                self.log[f"{name.split('_')[0]}_batches"].append(args[2])
                self.log["sharded"][name.split("_")[0]] = dist.is_sharded(args[0])
                if name == "critic_update":
                    self.critic = args[0]
                if name == "policy_update":
                    self.log["sharded"]["reference"] = dist.is_sharded(kwargs.get("ref_model"))
                    if self.critic is not None and lora.has_lora(args[0]):
                        self.log["base_sharing"] = base_sharing(args[0], self.critic)
            elif name == "gathered_replica":
                self.log["gathered"] += 1
            else:
                self.log["lockstep"].append(kwargs["lockstep"])
            return out

        return wrapped


def base_sharing(policy: torch.nn.Module, critic: torch.nn.Module) -> dict:
    """How a LoRA critic's frozen backbone relates to the policy's base (`value.value_model_from_policy` gives it the
    policy's Parameter objects): the same objects or not, all DTensor shards or not, and whether this process's
    shards of the two are equal; and whether all of them are frozen."""
    from torch.distributed.tensor import DTensor

    ours, theirs = lora.base_parameters(critic.base_model), lora.base_parameters(policy.base_model)
    assert set(ours) == set(theirs) and ours, "the critic's backbone is the policy's base"
    local = [(a.to_local(), b.to_local()) if isinstance(a, DTensor) and isinstance(b, DTensor) else (a, b)
             for a, b in ((ours[k], theirs[k]) for k in ours)]
    return {"same_objects": any(ours[k] is theirs[k] for k in ours),
            "sharded": all(isinstance(p, DTensor) for p in (*ours.values(), *theirs.values())),
            "equal": all(a.shape == b.shape and torch.equal(a, b) for a, b in local),
            "frozen": not any(p.requires_grad for p in (*ours.values(), *theirs.values())), "num": len(ours)}


def lora_replica(model_dir: Path) -> dict:
    """`dist.gathered_replica` of an FSDP2-sharded LoRA policy whose adapters are not zero (B drawn from a fixed
    generator, the same on every process), with the unsharded policy's logits on a fixed batch to compare."""
    from torch.distributed.tensor import DTensor

    from reasonrl.model.setup import prepare_for_training
    from reasonrl.model.tiny import load_model

    policy, _ = load_model(model_dir)
    prepare_for_training(policy, load_config(None, [f"--model.path={model_dir}", *LORA]))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    ids = torch.randint(3, policy.config.vocab_size, (3, 7), generator=g)
    with torch.no_grad():
        want = policy.eval()(input_ids=ids).logits
        with lora.adapters_off(policy):
            base = policy(input_ids=ids).logits
    replica = dist.gathered_replica(dist.wrap_model(policy, "fsdp2"))
    with torch.no_grad():
        got = replica(input_ids=ids).logits
    return {"got": got, "want": want, "base": base, "class": type(replica).__name__, "lora": lora.has_lora(replica),
            "full": not any(isinstance(p, DTensor) for p in replica.parameters())}


def uneven_minibatches(strategy: str) -> dict[str, torch.Tensor]:
    """test_rl_distributed's uneven case under `strategy`, on its tiny policy: scripted rollouts where rank 0 keeps
    two groups and rank 1 one, then minibatches of 4 over 8 + 4 rows (3 per epoch; rank 1 trains its third on a
    one-row masked stand-in), prompts shared where a minibatch repeats one. Seed 1: in both epochs rank 0's
    third minibatch is two rows of one group (it could share) while rank 1's stand-in row cannot: under FSDP2 the
    ranks must agree, or one makes two forward calls where the other makes one. Returns the full updated weights
    (on rank 0, `dist.full_state_dict`)."""
    cfg = dw.sampling_config("--rl.minibatch_size=4", f"--dist.strategy={strategy}")
    real = rl.rollout_and_score
    rl.rollout_and_score = dw.scripted_rollout(dw.rank1_keeps_one_group)
    try:
        batch, _ = grpo.collect(None, dw.PAD, dw.RECORDS, cfg, rl.progress_state(None), reward=None)
    finally:
        rl.rollout_and_score = real
    batch.advantages = group_advantages(batch.scores, dw.G)[:, None] * batch.mask
    model = dist.wrap_model(dw.tiny_policy(), strategy)
    rl.policy_update(model, torch.optim.SGD(model.parameters(), lr=0.5), batch, cfg, seed=1)
    return dist.full_state_dict(model)


def tied_replica(tokenizer) -> dict:
    """`dist.gathered_replica` of an FSDP2-sharded micro model with tied embeddings (the project's presets tie
    them): its weights, and whether the LM head is still the embedding."""
    from reasonrl.model.tiny import build_model

    replica = dist.gathered_replica(dist.wrap_model(build_model("micro", tokenizer), "fsdp2"))
    return {"weights": {k: v.clone() for k, v in replica.state_dict().items()},
            "tied": replica.lm_head.weight is replica.model.embed_tokens.weight, "class": type(replica).__name__}


def run(rank: int, world: int, port: int, out_dir: str, model_dir: str, data: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init("gloo")
    rec = Recorder()
    out: dict = {}
    root = Path(out_dir)
    try:
        assert fsdp.sharded(load_config(None, ["--dist.strategy=fsdp2"]))
        from transformers import AutoTokenizer

        rec.start()
        out["tied_replica"] = tied_replica(AutoTokenizer.from_pretrained(model_dir))
        out["uneven"] = {strategy: uneven_minibatches(strategy) for strategy in ("fsdp2", "ddp")}
        out["lora_replica"] = lora_replica(Path(model_dir))
        for name, (algo, extra) in SCENARIOS.items():
            rec.start()
            run_train(algo, overrides(Path(model_dir), Path(data), root / name, algo, *extra))
            out[name] = rec.log
        # resume: 2 steps in one go vs 1 step, then resumed for the second (Dion policy, AdamW critic: both sharded)
        resume = ["--optim.name=dion", "--optim.rank_fraction=0.5", "--optim.scalar_lr=0.01"]
        rec.start()
        run_train("ppo", overrides(Path(model_dir), Path(data), root / "full", "ppo", *resume, "--train.steps=2"))
        run_train("ppo", overrides(Path(model_dir), Path(data), root / "resumed", "ppo", *resume))
        run_train("ppo", overrides(Path(model_dir), Path(data), root / "resumed", "ppo", *resume, "--train.steps=2",
                                   "--train.resume=true"))
        # the same with LoRA (adapters, the critic's value head and their sharded AdamW states); the uninterrupted
        # run's rollouts kept: its second one samples from trained adapters (the gathered copy must carry them)
        algo, extra = LORA_RESUME
        rec.start()
        run_train(algo, overrides(Path(model_dir), Path(data), root / "lora_full", algo, *extra, "--train.steps=2"))
        out["lora_full"] = rec.log
        run_train(algo, overrides(Path(model_dir), Path(data), root / "lora_resumed", algo, *extra))
        run_train(algo, overrides(Path(model_dir), Path(data), root / "lora_resumed", algo, *extra,
                                  "--train.steps=2", "--train.resume=true"))
    finally:
        dist.destroy()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
