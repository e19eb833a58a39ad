"""Experiment trackers behind `MetricsLog` (`log.report_to`): TensorBoard, Weights & Biases and MLflow.

Each tracker gets what `metrics.jsonl` gets: every numeric value of a logged record, under the same name at the same
step (`logging.scalars`: strings, booleans and non-finite numbers are not scalars; MLflow, whose names allow fewer
characters, gets the others as "_"), and the resolved config as hyperparameters. Only rank 0 logs.

The order in a run (docs/runs.md): `check` before anything is written (each tracker importable, W&B credentials
when it runs online, the MLflow store usable); `start` once the run directory is claimed. The W&B and MLflow run ids
go to `run_dir/trackers.json` and `--resume` continues those runs; TensorBoard appends to `run_dir/tensorboard/`,
dropping the steps the resumed run replays. A tracker first named on a resume starts a new run, and `MetricsLog`
sends it the metrics logged so far. W&B keeps its files in `run_dir/wandb/` unless $WANDB_DIR is set; MLflow uses
$MLFLOW_TRACKING_URI (its own default: `sqlite:///mlflow.db` in the working directory).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from reasonrl import dist
from reasonrl.config import Config, LogConfig, to_dict
from reasonrl.errors import UserError, one_line
from reasonrl.outputs import write_atomic
from reasonrl.userfiles import read_json_object

TRACKER_FILES = ("tensorboard", "wandb", "trackers.json")  # what trackers write into a run directory
IDS_FILE = "trackers.json"
INSTALL = "pip install -e .[tracking]"
_MODULES = {"tensorboard": ("tensorboard", "torch.utils.tensorboard"), "wandb": ("wandb",), "mlflow": ("mlflow",)}
_STARTED: list = []


def check(cfg: Config) -> None:
    """Refuse, before anything is written, a tracker that cannot start: not installed, W&B online without
    credentials, an MLflow tracking store that cannot be used. Rank 0 looks; every rank raises its error."""
    if not cfg.log.report_to:
        return
    dist.main_decides(lambda: _check(cfg))


def _check(cfg: Config) -> None:
    _check_log(cfg.log)
    if cfg.train.resume:  # a damaged trackers.json is refused before the run directory is claimed
        read_ids(Path(cfg.log.run_dir))


def _check_log(log: LogConfig) -> None:
    for name in log.report_to:
        for module in _MODULES[name]:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise UserError(f"log.report_to: {name} needs the {e.name or module} package: {INSTALL}") from None
    if "wandb" in log.report_to and os.environ.get("WANDB_MODE", "").lower() not in ("offline", "dryrun", "disabled"):
        import wandb

        try:  # no network (verify=False); prompts at a terminal, raises without one and without credentials
            wandb.login(verify=False)
        except wandb.errors.Error as e:
            raise UserError(f"log.report_to: wandb cannot log in ({one_line(e, typed=True)}); run `wandb login`, set "
                            "WANDB_API_KEY, or WANDB_MODE=offline") from None
    if "mlflow" in log.report_to:
        import mlflow

        uri = mlflow.get_tracking_uri()
        try:
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
        except Exception as e:  # whatever the store raises (a missing driver, a server down, a refused store)
            raise UserError(f"log.report_to: mlflow cannot use its tracking store {uri} "
                            f"({one_line(e, typed=True)}); set MLFLOW_TRACKING_URI") from None


def start(cfg: Config, run_dir: Path, resume_step: int) -> list:
    """The configured trackers, started (rank 0; an empty list elsewhere and without `log.report_to`). A resumed
    run continues the runs named in `run_dir/trackers.json`; the ids of the started runs are written there. A
    tracker that fails to start is one UserError on every rank."""
    if not cfg.log.report_to:
        return []
    return dist.main_decides(lambda: _start(cfg, Path(run_dir), resume_step)) or []


def _start(cfg: Config, run_dir: Path, resume_step: int) -> list:
    ids = read_ids(run_dir) if cfg.train.resume else {}
    config = to_dict(cfg)
    started: list = []
    for name in cfg.log.report_to:
        try:
            started.append(_CLASSES[name](run_dir, config, ids.get(name) or {}, cfg.log.project, resume_step))
        except Exception as e:  # a third-party tracker failing to start, for any reason: one line
            for tracker in started:
                tracker.finish(ok=False)
            message = str(e) if isinstance(e, UserError) else one_line(e, typed=True)
            raise UserError(f"log.report_to: {name} failed to start: {message}") from None
    ids.update({t.name: t.run_id for t in started if t.run_id})
    if ids:
        write_atomic(run_dir / IDS_FILE, json.dumps(ids, indent=2) + "\n")
    _STARTED.extend(started)
    return started


def read_ids(run_dir: Path) -> dict[str, dict]:
    """`run_dir/trackers.json`: tracker name -> its run's ids ({} when absent)."""
    path = Path(run_dir) / IDS_FILE
    if not path.is_file():
        return {}
    ids = read_json_object(path)
    for name, saved in ids.items():
        if not isinstance(saved, dict):
            raise UserError(f"{path}: {name!r} must be an object of run ids, got {type(saved).__name__}; delete the "
                            "file to start new tracker runs")
    return ids


def flat_config(config: dict[str, dict]) -> dict[str, Any]:
    """`{"section.key": value}`; lists as JSON text (TensorBoard's and MLflow's hyperparameters are scalars)."""
    return {f"{section}.{key}": json.dumps(value) if isinstance(value, list) else value
            for section, table in config.items() for key, value in table.items()}


def _forget(tracker) -> None:
    """A tracker being finished is no longer the exit hook's to close."""
    if tracker in _STARTED:
        _STARTED.remove(tracker)


# Each tracker starts in `__init__` and has `log(step, values)` and `finish(ok)`; `new` is True when its run was
# created now (not continued), `run_id` is what trackers.json keeps to continue it (None: nothing to keep).


class TensorBoard:
    """Event files in `run_dir/tensorboard/`; hyperparameters in TensorBoard's HPARAMS tab."""

    name = "tensorboard"
    run_id = None

    def __init__(self, run_dir: Path, config: dict, saved: dict, project: str, resume_step: int):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        logdir = run_dir / "tensorboard"
        self.new = not (logdir.is_dir() and any(logdir.iterdir()))
        # a resumed run replays the steps after its checkpoint: TensorBoard drops the earlier events from there on
        self._writer = SummaryWriter(str(logdir), purge_step=None if self.new else resume_step + 1)
        if self.new:
            for summary in hparams(flat_config(config), {}):
                self._writer.file_writer.add_summary(summary)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self._writer.add_scalar(key, value, step)

    def finish(self, ok: bool = True) -> None:
        _forget(self)
        self._writer.close()


class WandB:
    """A W&B run named after the run directory, the resolved config as its config; `--resume` continues it."""

    name = "wandb"

    def __init__(self, run_dir: Path, config: dict, saved: dict, project: str, resume_step: int):
        import wandb

        self.new = "run_id" not in saved
        where = {} if os.environ.get("WANDB_DIR") else {"dir": str(run_dir)}
        self._run = wandb.init(project=project or None, name=run_dir.name, id=saved.get("run_id"),
                               resume=None if self.new else "allow", **where)
        self._run.config.update(config, allow_val_change=True)  # a resume may change safe keys (train.steps)
        self.run_id = {"run_id": self._run.id}

    def log(self, step: int, values: dict[str, float]) -> None:
        self._run.log(values, step=step)

    def finish(self, ok: bool = True) -> None:
        _forget(self)
        self._run.finish(exit_code=0 if ok else 1)


class MLflow:
    """An MLflow run named after the run directory (experiment `log.project`, else $MLFLOW_EXPERIMENT_NAME, else
    MLflow's default), the flattened config as its params; `--resume` continues it."""

    name = "mlflow"

    def __init__(self, run_dir: Path, config: dict, saved: dict, project: str, resume_step: int):
        import mlflow
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        uri = mlflow.get_tracking_uri()
        self._client = mlflow.MlflowClient(uri)
        self.new = "run_id" not in saved
        if self.new:
            run_id = self._client.create_run(self._experiment(project), run_name=run_dir.name).info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in flat_config(config).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self._client.log_batch(run_id, params=params[i : i + 100])
        else:
            run_id = saved["run_id"]
            try:
                self._client.get_run(run_id)
            except MlflowException:
                raise UserError(f"run {run_id} of {run_dir / IDS_FILE} is not in the tracking store {uri} (it was "
                                f"in {saved.get('tracking_uri')}): set MLFLOW_TRACKING_URI") from None
            self._client.update_run(run_id, status="RUNNING")
        self._run_id = run_id
        self.run_id = {"run_id": run_id, "tracking_uri": uri}

    def _experiment(self, project: str) -> str:
        name = project or os.environ.get("MLFLOW_EXPERIMENT_NAME", "")
        if not name:
            return os.environ.get("MLFLOW_EXPERIMENT_ID", "0")  # MLflow's "Default" experiment
        experiment = self._client.get_experiment_by_name(name)
        return experiment.experiment_id if experiment else self._client.create_experiment(name)

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(self._run_id, metrics=[Metric(mlflow_key(k), v, now, step) for k, v in values.items()])

    def finish(self, ok: bool = True) -> None:
        _forget(self)
        self._client.set_terminated(self._run_id, status="FINISHED" if ok else "FAILED")


def mlflow_key(name: str) -> str:
    """A metric name as MLflow allows it: characters other than letters, digits, `_ - . : /` and space -> "_"."""
    return re.sub(r"[^\w\-.:/ ]", "_", name)


_CLASSES = {"tensorboard": TensorBoard, "wandb": WandB, "mlflow": MLflow}


@atexit.register
def finish_all() -> None:
    """Trackers still open at exit belong to a run that did not reach its end: close them as failed."""
    for tracker in list(_STARTED):
        tracker.finish(ok=False)
