"""The trainers on `datasets` formats (micro model, seconds): SFT on a parquet file computes exactly what it computes
on the same rows as JSONL, and GRPO on a verl-style parquet file samples its chat prompts through the chat template,
hands the rows' extra columns to the reward, and evaluates on a `DatasetDict`'s test split."""

from __future__ import annotations

import json

import datasets
import pytest

from reasonrl.config import load_config
from reasonrl.tasks import synthetic
from reasonrl.train import grpo, rl, sft
from reasonrl.train import run as run_lib
from reasonrl.train.logging import read_metrics


@pytest.fixture(autouse=True)
def hf_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf_cache"))


def _micro(tokenizer_dir, run_dir, *more: str):
    return load_config(None, ["--model.preset=micro", f"--model.tokenizer_path={tokenizer_dir}", "--data.max_len=96",
                              "--train.batch_size=4", "--train.eval_every=0", "--train.eval_examples=2",
                              "--train.save_every=0", "--optim.lr=3e-3", "--optim.warmup_steps=1",
                              "--rollout.max_new_tokens=6", f"--log.run_dir={run_dir}", "--log.progress=false",
                              "--log.plots=false", *more])


def test_sft_on_parquet_equals_sft_on_jsonl(tmp_path, tokenizer_dir):
    rows = [{k: r[k] for k in ("prompt", "response", "answer")} for r in synthetic.generate(24, seed=3, difficulty=1)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "train.parquet"))
    losses = {}
    for fmt in ("jsonl", "parquet"):
        cfg = _micro(tokenizer_dir, tmp_path / fmt, f"--data.source={tmp_path / f'train.{fmt}'}",
                     f"--data.test_source={tmp_path / 'train.jsonl'}", "--train.steps=3")
        sft.train(cfg)
        losses[fmt] = [m["loss"] for m in read_metrics(tmp_path / fmt / "metrics.jsonl") if "loss" in m]
    # same rows, same order, same ids for the sampler's permutation: the same three optimizer steps
    assert len(losses["jsonl"]) == 3 and losses["parquet"] == losses["jsonl"]
    assert losses["jsonl"][-1] < losses["jsonl"][0]  # it trained


def test_grpo_on_verl_parquet_with_chat_prompts(tmp_path, tokenizer_dir, world_tokenizer, monkeypatch):
    world = synthetic.generate(12, seed=5, difficulty=1)
    system = {"role": "system", "content": "Think step by step."}
    verl = [{"data_source": "world", "prompt": [system, {"role": "user", "content": r["prompt"]}],
             "reward_model": {"style": "rule", "ground_truth": r["answer"]}} for r in world]
    datasets.Dataset.from_list(verl[:8]).to_parquet(str(tmp_path / "train.parquet"))
    datasets.DatasetDict(train=datasets.Dataset.from_list(verl[:8]),
                         test=datasets.Dataset.from_list(verl[8:])).save_to_disk(str(tmp_path / "dd"))
    seen_records, seen_prompts = [], []
    real_score, real_sample = rl.rollout_and_score, rl.sample

    def score(policy, tokenizer, records, *args, **kwargs):
        seen_records.extend(records)
        return real_score(policy, tokenizer, records, *args, **kwargs)

    def sample(model, tokenizer, prompts, *args, **kwargs):
        seen_prompts.extend(prompts)
        return real_sample(model, tokenizer, prompts, *args, **kwargs)

    heldout, real_heldout = [], run_lib.heldout_accuracy

    def evaluate(model, tokenizer, cfg, records):
        heldout.append([r["prompt"] for r in records])
        return real_heldout(model, tokenizer, cfg, records)

    monkeypatch.setattr(rl, "rollout_and_score", score)
    monkeypatch.setattr(rl, "sample", sample)
    monkeypatch.setattr(run_lib, "heldout_accuracy", evaluate)  # finish_run's
    cfg = _micro(tokenizer_dir, tmp_path / "run", f"--data.source={tmp_path / 'train.parquet'}",
                 f"--data.test_source={tmp_path / 'dd'}", "--data.answer_field=reward_model.ground_truth",
                 "--rl.algo=grpo", "--train.steps=2", "--rollout.num_samples=2", "--rl.prompts_per_step=4",
                 "--rl.minibatch_size=8", "--train.eval_examples=8")
    result = grpo.train(cfg)
    assert len(seen_records) == 2 * 4  # two steps of four prompts, read from the parquet file
    by_question = {r["prompt"]: r for r in world[:8]}
    for record in seen_records:
        gold = by_question[record["prompt"]]  # a training row, not a held-out one
        assert record["answer"] == gold["answer"] and record["reward_model"]["ground_truth"] == gold["answer"]
        assert record["prompt_messages"] == [system, {"role": "user", "content": gold["prompt"]}]
    rendered = [world_tokenizer.apply_chat_template(r["prompt_messages"], tokenize=False, add_generation_prompt=True)
                for r in seen_records]
    assert seen_prompts == rendered and "Think step by step." in rendered[0]  # the system turn reached the model
    steps = [m for m in read_metrics(tmp_path / "run" / "metrics.jsonl") if "reward" in m]
    assert [m["num_responses"] for m in steps] == [8, 8]
    assert heldout == [[r["prompt"] for r in world[8:]]]  # the final evaluation: the DatasetDict's test split
    assert 0.0 <= result["heldout_acc"] <= 1.0
