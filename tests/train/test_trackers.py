"""`log.report_to`: TensorBoard, W&B and MLflow get what metrics.jsonl gets, read back offline with each tool's
own reader (TensorBoard's EventAccumulator, the W&B offline run file, an MLflow file store and its client); a
resume continues the same runs; only rank 0 logs; a tracker that cannot start is one line, exit 2."""

from __future__ import annotations

import json
import math
import struct
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from reasonrl.config import load_config
from reasonrl.train import trackers
from reasonrl.train.logging import MetricsLog, read_metrics

sys.path.insert(0, str(Path(__file__).parent))
import _trackers_dist_worker as dist_worker  # noqa: E402

ALL = "--log.report_to=tensorboard,wandb,mlflow"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline under tmp, MLflow on a local file store under tmp (the file store needs its opt-in in 3.x)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)  # W&B files then go to run_dir/wandb
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return tmp_path / "mlruns"


def test_report_to_takes_a_list_or_comma_separated_names():
    from reasonrl.errors import UserError

    assert load_config(None, ["--log.report_to=wandb,tensorboard"]).log.report_to == ["wandb", "tensorboard"]
    assert load_config(None, ['--log.report_to=["mlflow"]']).log.report_to == ["mlflow"]
    assert load_config(None, []).log.report_to == []  # metrics.jsonl and the plots only
    with pytest.raises(UserError, match=r"log.report_to\[1\]: 'comet' is not one of 'tensorboard', 'wandb', 'mlflow'"):
        load_config(None, ["--log.report_to=wandb,comet"])
    with pytest.raises(UserError, match="log.report_to names a tracker twice"):
        load_config(None, ["--log.report_to=wandb,wandb"])


# ------------------------------------------------------------------------------------------------------ readers


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tensorboard_hparams(run_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    data = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    return {k: v.number_value if v.HasField("number_value") else v.string_value if v.HasField("string_value")
            else v.bool_value for k, v in data.session_start_info.hparams.items()}


def wandb_records(path: Path) -> list:
    """The protobuf records of a W&B offline run file: a 7-byte header (":W&B", magic, version), then 32 KiB blocks
    of chunks, each with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, pending, out = 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += block - pos % block
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def wandb_runs(root: Path) -> list[dict]:
    """Each offline run under `root`, oldest first: its id, history {key: {step: value}} and config updates."""
    runs = []
    for path in sorted(root.glob("wandb/offline-run-*/run-*.wandb")):
        run = {"id": None, "history": defaultdict(dict), "config": {}}
        for r in wandb_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run["id"] = r.run.run_id
            elif kind == "history":
                row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
                for key, value in row.items():
                    if not key.startswith("_"):
                        run["history"][key][row["_step"]] = value
            elif kind == "config":
                run["config"].update({u.key: json.loads(u.value_json) for u in r.config.update})
        runs.append(run)
    return runs


def mlflow_history(uri: Path, run_id: str) -> dict[str, list[tuple[int, float]]]:
    import mlflow

    client = mlflow.MlflowClient(uri.as_uri())
    keys = client.get_run(run_id).data.metrics
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}


# ---------------------------------------------------------------------------------------- values and resume

NAN = float("nan")
BEFORE_CRASH = [  # strings, booleans and NaN are in metrics.jsonl but are not scalars
    {"step": 0, "heldout_acc": 0.25, "heldout_len": 12.0},
    {"step": 1, "loss": 2.5, "lr": 1e-3, "reward/verifier": -1.0, "phase": "value_pretrain", "explained_var": NAN},
    {"step": 2, "loss": 2.0, "lr": 2e-3, "mean@n": 0.5, "early_stop": True},
    {"step": 3, "loss": 1.75, "lr": 3e-3},  # after the step-2 checkpoint: replayed by the resumed run
]
AFTER_RESUME = [{"step": 3, "loss": 1.5, "lr": 3e-3}, {"step": 4, "loss": 1.25, "lr": 4e-3, "reward/verifier": 0.5},
                {"step": 4, "heldout_acc": 0.75}]
# by hand: what metrics.jsonl holds after the resume, as {name: {step: value}} (the resumed step 3 replaced)
EXPECTED = {"heldout_acc": {0: 0.25, 4: 0.75}, "heldout_len": {0: 12.0}, "loss": {1: 2.5, 2: 2.0, 3: 1.5, 4: 1.25},
            "lr": {1: 1e-3, 2: 2e-3, 3: 3e-3, 4: 4e-3}, "reward/verifier": {1: -1.0, 4: 0.5}, "mean@n": {2: 0.5}}


def _last_per_step(points) -> dict[int, float]:
    return {step: value for step, value in points}  # later points at a step replace earlier ones


def test_trackers_get_the_metrics_and_config_and_resume_continues_their_runs(tmp_path, offline):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = load_config(None, [ALL, f"--log.run_dir={run_dir}", "--train.steps=4"])
    trackers.check(cfg)
    log = MetricsLog(run_dir, trackers=trackers.start(cfg, run_dir, 0))
    for record in BEFORE_CRASH:
        log.log(record)
    trackers.finish_all()  # the process dies after step 3; its exit hook closes the trackers as failed
    first_ids = trackers.read_ids(run_dir)

    resumed = load_config(None, [ALL, f"--log.run_dir={run_dir}", "--train.steps=5", "--train.resume=true"])
    log = MetricsLog(run_dir, resume_step=2, trackers=trackers.start(resumed, run_dir, 2))
    for record in AFTER_RESUME:
        log.log(record)
    log.close()

    jsonl = defaultdict(dict)
    for line in read_metrics(run_dir / "metrics.jsonl"):
        for k, v in line.items():
            if k != "step" and isinstance(v, float | int) and not isinstance(v, bool):
                jsonl[k][line["step"]] = v
    assert jsonl == EXPECTED  # the trackers' reference, by hand

    # TensorBoard: exactly these points, the crashed run's step 3 purged
    tb = tensorboard_scalars(run_dir)
    assert {k: [s for s, _ in v] for k, v in tb.items()} == {k: sorted(v) for k, v in EXPECTED.items()}
    for key, points in tb.items():
        assert dict(points) == pytest.approx(EXPECTED[key], rel=1e-6)  # float32 in the event files
    hparams = tensorboard_hparams(run_dir)
    assert hparams["train.steps"] == 4 and hparams["log.report_to"] == '["tensorboard", "wandb", "mlflow"]'

    # MLflow: one run continued; at every step the last value logged is metrics.jsonl's
    assert trackers.read_ids(run_dir)["mlflow"] == first_ids["mlflow"]
    run_id = first_ids["mlflow"]["run_id"]
    history = mlflow_history(offline, run_id)
    assert {k: _last_per_step(v) for k, v in history.items()} == {
        trackers.mlflow_key(k): v for k, v in EXPECTED.items()}  # "mean@n" -> "mean_n"
    assert history["loss"][:4] == [(1, 2.5), (2, 2.0), (3, 1.75), (3, 1.5)]  # the replayed step follows the old one
    import mlflow

    run = mlflow.MlflowClient(offline.as_uri()).get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["train.steps"] == "4" and run.data.params["optim.name"] == "adamw"

    # W&B: two offline files of one run id; together they hold metrics.jsonl's values
    runs = wandb_runs(run_dir)
    assert len(runs) == 2 and runs[0]["id"] == runs[1]["id"] == first_ids["wandb"]["run_id"]
    merged = defaultdict(dict)
    for run in runs:
        for key, points in run["history"].items():
            merged[key].update(points)
    assert merged == EXPECTED
    assert runs[0]["history"]["loss"] == {1: 2.5, 2: 2.0, 3: 1.75}
    assert runs[0]["config"]["train"]["steps"] == 4 and runs[1]["config"]["train"]["steps"] == 5


def test_a_tracker_added_on_resume_gets_the_history(tmp_path):
    run_dir = tmp_path / "run"
    log = MetricsLog(run_dir)  # first run: no trackers
    for step in (1, 2, 3):
        log.log({"step": step, "loss": 1.0 / step})
    cfg = load_config(None, ["--log.report_to=tensorboard", f"--log.run_dir={run_dir}", "--train.resume=true"])
    log = MetricsLog(run_dir, resume_step=2, trackers=trackers.start(cfg, run_dir, 2))
    log.log({"step": 3, "loss": 0.25})
    log.close()
    assert tensorboard_scalars(run_dir) == {"loss": [(1, 1.0), (2, 0.5), (3, 0.25)]}


def test_only_rank_zero_logs(tmp_path, free_port, offline, run_forked):
    run_dir = tmp_path / "run"
    run_forked(dist_worker.run, (2, free_port(), str(run_dir)), nprocs=2, timeout_s=180,
               what="the 2-process tracker run")
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert tensorboard_scalars(run_dir) == {"loss": [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]}
    import mlflow

    runs = mlflow.MlflowClient(offline.as_uri()).search_runs(["0"])
    assert len(runs) == 1 and runs[0].info.run_id == trackers.read_ids(run_dir)["mlflow"]["run_id"]


# ------------------------------------------------------------------------------------------------ through the CLI


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    from reasonrl.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err.strip().splitlines()


def _sft(tokenizer_dir, run_dir, *more: str) -> list[str]:
    return ["sft", "--model.preset=micro", f"--model.tokenizer_path={tokenizer_dir}", "--data.difficulty=1",
            "--data.num_train=32", "--data.max_len=96", "--train.batch_size=4", "--train.eval_every=0",
            "--train.eval_examples=2", "--train.save_every=1", "--rollout.max_new_tokens=6", "--optim.lr=3e-3",
            "--optim.warmup_steps=1", f"--log.run_dir={run_dir}", "--log.progress=false", "--log.plots=false", *more]


def test_cli_sft_logs_to_every_tracker_and_resume_continues(tmp_path, offline, tokenizer_dir, capsys):
    run = tmp_path / "run"
    code, err = _cli(capsys, *_sft(tokenizer_dir, run, ALL, "--train.steps=2"))
    assert code == 0, err
    ids = trackers.read_ids(run)
    code, err = _cli(capsys, *_sft(tokenizer_dir, run, ALL, "--train.steps=3", "--resume"))
    assert code == 0, err
    assert trackers.read_ids(run) == ids  # the same W&B and MLflow runs

    want = defaultdict(dict)
    for line in read_metrics(run / "metrics.jsonl"):
        for k, v in line.items():
            if k != "step" and isinstance(v, float | int) and not isinstance(v, bool) and math.isfinite(v):
                want[k][line["step"]] = v
    assert sorted(want["loss"]) == [1, 2, 3] and sorted(want["heldout_acc"]) == [2, 3]  # each run's final eval
    assert want["tokens_seen"][3] > want["tokens_seen"][2] > 0  # ints are scalars too
    tb = tensorboard_scalars(run)
    assert sorted(tb) == sorted(want)
    for key, points in tb.items():
        assert [s for s, _ in points] == sorted(want[key]) and dict(points) == pytest.approx(want[key], rel=1e-6)
    history = mlflow_history(offline, ids["mlflow"]["run_id"])
    assert {k: _last_per_step(v) for k, v in history.items()} == dict(want)
    runs = wandb_runs(run)
    assert [r["id"] for r in runs] == [ids["wandb"]["run_id"]] * 2
    assert runs[1]["history"]["loss"] == {3: want["loss"][3]}


def test_cli_tracker_that_cannot_start_is_one_line_before_anything_is_written(tmp_path, tokenizer_dir, capsys,
                                                                             monkeypatch):
    run = tmp_path / "run"
    # W&B online without credentials (no key, no netrc, no terminal to prompt at)
    import wandb

    wandb.teardown()  # W&B keeps its settings per process: forget an earlier test's offline mode
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    code, err = _cli(capsys, *_sft(tokenizer_dir, run, "--log.report_to=wandb", "--train.steps=1"))
    assert code == 2 and len(err) == 1 and "log.report_to: wandb cannot log in" in err[0], err
    assert not run.exists()
    # an MLflow store that refuses (3.x's file store without its opt-in)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    code, err = _cli(capsys, *_sft(tokenizer_dir, run, "--log.report_to=mlflow", "--train.steps=1"))
    assert code == 2 and len(err) == 1 and "log.report_to: mlflow cannot use its tracking store file:" in err[0], err
    assert not run.exists()
    # a tracker package that is not installed
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    code, err = _cli(capsys, *_sft(tokenizer_dir, run, "--log.report_to=tensorboard,mlflow", "--train.steps=1"))
    assert code == 2 and err == ["reasonrl: error: log.report_to: mlflow needs the mlflow package: "
                                 "pip install -e .[tracking]"], err
    assert not run.exists()


def test_cli_tracker_failing_after_the_claim_stops_before_training(tmp_path, offline, tokenizer_dir, capsys,
                                                                   monkeypatch):
    import mlflow

    def refuse(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("the server went away")

    monkeypatch.setattr(mlflow.MlflowClient, "create_run", refuse)
    run = tmp_path / "run"
    code, err = _cli(capsys, *_sft(tokenizer_dir, run, "--log.report_to=tensorboard,mlflow", "--train.steps=1"))
    assert code == 2 and err == ["reasonrl: error: log.report_to: mlflow failed to start: MlflowException: the "
                                 "server went away"], err
    assert not (run / "metrics.jsonl").exists() and not (run / "checkpoints").exists()  # no step was trained


def test_rm_train_logs_to_trackers_too(tmp_path, tokenizer_dir):
    from reasonrl.pairwise.rm_train import rm_train

    run = tmp_path / "judge_run"
    rm_train(load_config(Path(__file__).resolve().parents[2] / "configs" / "pairwise_tiny.toml",
                         [f"--model.tokenizer_path={tokenizer_dir}", "--pairwise.num_train=16",
                          "--pairwise.num_test=8", "--log.report_to=tensorboard", f"--log.run_dir={run}",
                          "--log.plots=false"]))
    metrics = read_metrics(run / "metrics.jsonl")
    tb = tensorboard_scalars(run)
    assert [s for s, _ in tb["loss"]] == [1, 2, 3]
    assert dict(tb["loss"]) == pytest.approx({m["step"]: m["loss"] for m in metrics if "loss" in m}, rel=1e-6)
    assert dict(tb["heldout_accuracy"]) == pytest.approx({3: metrics[-1]["heldout_accuracy"]})
