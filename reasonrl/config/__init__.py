"""Configuration: one dataclass per section (`sections.py`; the paper sections in `papers.py`), loaded from TOML and
overridden by `--section.key=value` (`load.py`), range-checked (`checks.py`).

Every field has a docstring. Unknown sections or keys, wrong types, a missing file and malformed TOML raise
`UserError` naming the file and the line or key; the CLI turns that into one line on stderr and exit code 2. The
resolved config is written to the run directory (`write_resolved`).
"""

from reasonrl.config.checks import check_ranges
from reasonrl.config.load import from_dict, load_config, to_dict, write_resolved
from reasonrl.config.sections import (
    Config,
    DataConfig,
    DistConfig,
    EvalConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    PairwiseConfig,
    RewardConfig,
    RLConfig,
    RolloutConfig,
    SwirlConfig,
    TrainConfig,
)

__all__ = ["Config", "DataConfig", "DistConfig", "EvalConfig", "LogConfig", "ModelConfig", "OptimConfig",
           "PairwiseConfig", "RLConfig", "RewardConfig", "RolloutConfig", "SwirlConfig", "TrainConfig", "check_ranges",
           "from_dict", "load_config", "to_dict", "write_resolved"]
