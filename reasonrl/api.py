"""The Python API: what a script needs, without the command line (which calls these same functions).

    import reasonrl
    cfg = reasonrl.load_config("configs/grpo_tiny.toml", {"train.steps": 20})     # or load_config(): the defaults
    result = reasonrl.rl(cfg, reward=["verifier", format_bonus], train_data=dataset)
    result.model_dir, result.metrics[-1], result.summary
    reasonrl.evaluate(reasonrl.load_config(overrides={"model.path": str(result.model_dir)}), data=test_set)

Data: a list of dicts or anything with `len()` and integer indexing that returns dicts (a `datasets.Dataset`), with
the fields a JSONL file has (`data.prompt_field`, ...; extra fields reach the reward). A reward: a kind name, a
`"file.py:name"` path, a Python function (TRL's or verl's shape, or a builder or a `Reward`), or a list of these,
summed with `reward.weights`; validated by the same dry call as the configured one. The config given is checked
again (types and ranges) and not changed: the run uses a copy.

In-memory data and rewards passed as functions are not recorded in the run's `config.json`: a `--resume` cannot
tell whether they changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reasonrl.config import Config, check_ranges, from_dict, load_config, to_dict
from reasonrl.errors import warn

__all__ = ["Result", "evaluate", "load_config", "rl", "sft"]


@dataclass
class Result:
    """What a run gives back."""

    run_dir: Path
    """The run's directory (`log.run_dir`), or evaluate's output directory."""
    model_dir: Path | None
    """The final model (`run_dir/final`, a Hugging Face directory); None for `evaluate`."""
    metrics: list[dict]
    """The run's `metrics.jsonl`, one dict per logged line (on the main process; empty on the others under
    torchrun); empty for `evaluate`."""
    summary: dict
    """Training: the final held-out metrics (`heldout_acc`, ...); evaluate: accuracy, pass@k, lengths, reward."""
    samples: list[dict] = field(default_factory=list)
    """evaluate: every sample (prompt, response, correct, length, reward, ...)."""


def sft(cfg: Config, *, train_data=None, test_data=None) -> Result:
    """Supervised fine-tuning as configured (`reasonrl sft`); `train_data` / `test_data` replace `data.source`."""
    from reasonrl.train.sft import train

    cfg = _checked(cfg)
    return _trained(cfg, train(cfg, train_data=train_data, test_data=_test_data(cfg, train_data, test_data)))


def rl(cfg: Config, *, reward=None, train_data=None, test_data=None) -> Result:
    """RL post-training as configured (`reasonrl rl`: PPO / VAPO or GRPO / DAPO by `rl.algo`); `reward` replaces
    `reward.kind(s)`, `train_data` / `test_data` replace `data.source`."""
    from reasonrl.train import run_rl

    cfg = _checked(cfg)
    summary = run_rl(cfg, reward=reward, train_data=train_data, test_data=_test_data(cfg, train_data, test_data))
    return _trained(cfg, summary)


def evaluate(cfg: Config, *, data=None, reward=None, out_dir: str | Path | None = None,
             overwrite: bool = False) -> Result:
    """Sample and score `model.path` on `data` (else `data.source`) as `reasonrl eval` does, writing samples.jsonl
    and summary.json to `out_dir` (default `log.run_dir`; an earlier evaluation there is replaced only with
    `overwrite`); with `reward` (or `eval.reward`, `reward.kinds`) the mean reward stands beside accuracy."""
    from reasonrl.eval.evaluate import evaluate as run_evaluate

    cfg = _checked(cfg)
    summary, samples = run_evaluate(cfg, out_dir=None if out_dir is None else str(out_dir), overwrite=overwrite,
                                    data=data, reward=reward)
    return Result(run_dir=Path(out_dir or cfg.log.run_dir), model_dir=None, metrics=[], summary=summary,
                  samples=samples)


def _checked(cfg: Config) -> Config:
    """A copy of `cfg` with the checks a loaded config passed (a script may have set fields by hand)."""
    if not isinstance(cfg, Config):
        raise TypeError(f"expected a reasonrl Config (reasonrl.load_config), got {type(cfg).__name__}")
    copy = from_dict(to_dict(cfg), "config")
    check_ranges(copy, "config")
    return copy


def _test_data(cfg: Config, train_data, test_data):
    """Held-out problems: `test_data`; else, for `train_data` without `data.test_source`, the training data itself
    (one warning, as for a JSONL source without a test split); else None (the configured source's)."""
    if test_data is not None or train_data is None or cfg.data.test_source:
        return test_data
    warn("train_data without test_data (or data.test_source): held-out accuracy will be measured on the training "
         "data")
    return train_data


def _trained(cfg: Config, summary: dict) -> Result:
    from reasonrl import dist
    from reasonrl.train.logging import read_metrics

    run_dir = Path(summary.get("run_dir", cfg.log.run_dir))
    metrics = read_metrics(run_dir / "metrics.jsonl") if dist.is_main() else []  # the main process writes it
    return Result(run_dir=run_dir, model_dir=run_dir / "final", metrics=metrics,
                  summary={k: v for k, v in summary.items() if k != "run_dir"})
