"""Batched sampling for RL: `sample(model, tokenizer, prompts, SamplingParams(...)) -> Rollout` (see sampler.py)."""

from reasonrl.rollout.sampler import Rollout, SamplingParams, sample
from reasonrl.rollout.tools import calculator

__all__ = ["Rollout", "SamplingParams", "calculator", "sample"]
