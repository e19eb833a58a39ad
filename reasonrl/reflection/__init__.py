"""Reflection probes (Rethinking Reflection in Pre-Training, arXiv 2504.04022): adversarial chains of thought,
explicit-reflection classifiers and the paper's metrics."""

from reasonrl.reflection.classify import (
    JUDGE_DEFINITION,
    REFLECTION_PATTERNS,
    LLMJudgeClassifier,
    ReflectionClassifier,
    RuleBasedClassifier,
    judge_prompt,
)
from reasonrl.reflection.metrics import (
    METRICS,
    correlations_with_compute,
    inference_compute,
    pearson,
    reflection_metrics,
    train_compute,
)
from reasonrl.reflection.perturb import (
    GSM8K_TEMPLATE,
    SYNTHETIC_TEMPLATE,
    SYNTHETIC_TRIGGER_FORMAT,
    TRIGGERS,
    build_gsm8k_set,
    build_prompt,
    build_synthetic_set,
    self_reflection_set,
)
from reasonrl.reflection.perturbations import PERTURBATIONS, PerturbOptions

__all__ = [
    "GSM8K_TEMPLATE", "JUDGE_DEFINITION", "METRICS", "PERTURBATIONS", "REFLECTION_PATTERNS", "SYNTHETIC_TEMPLATE",
    "SYNTHETIC_TRIGGER_FORMAT", "TRIGGERS", "LLMJudgeClassifier", "PerturbOptions", "ReflectionClassifier",
    "RuleBasedClassifier", "build_gsm8k_set", "build_prompt", "build_synthetic_set", "correlations_with_compute",
    "inference_compute", "judge_prompt", "pearson", "reflection_metrics", "self_reflection_set", "train_compute",
]
