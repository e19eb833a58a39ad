import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reasonrl.config import load_config
from reasonrl.train import sft
from reasonrl.train.checkpoint import list_checkpoints, log_spaced_steps

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "sft_tiny.toml"


def _metrics(run_dir):
    return [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _weights(path):
    return load_file(str(Path(path) / "model.safetensors"))


def test_sft_cli_smoke_loss_falls_and_files_exist(tmp_path):
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "reasonrl", "sft", "--config", str(CONFIG), f"--log.run_dir={run}",
                        "--train.steps=30", "--train.save_every=10", "--train.log_checkpoints=3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = [x for x in _metrics(run) if "loss" in x]
    assert len(m) == 30
    first, last = sum(x["loss"] for x in m[:3]) / 3, sum(x["loss"] for x in m[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    assert all(torch.isfinite(torch.tensor(x["loss"])) for x in m)
    assert (run / "config.json").is_file() and json.loads((run / "config.json").read_text())["train"]["steps"] == 30
    assert (run / "final" / "model.safetensors").is_file() and (run / "final" / "tokenizer.json").is_file()
    assert (run / "plots" / "sft.png").stat().st_size > 1000
    final_line = _metrics(run)[-1]
    assert 0.0 <= final_line["heldout_acc"] <= 1.0
    # log-spaced steps {1, 5 or 6, 30} are kept; regular ones pruned to the newest two
    steps = [int(p.name.split("_")[1]) for p in list_checkpoints(run)]
    assert set(log_spaced_steps(30, 3)) <= set(steps), steps
    assert 30 in steps
    meta = json.loads((list_checkpoints(run)[-1] / "meta.json").read_text())
    assert meta["tokens_seen"] > 0 and meta["compute"] == 6.0 * meta["params"] * meta["tokens_seen"]
    assert not any(p.name.startswith(".tmp") for p in (run / "checkpoints").iterdir())


def test_log_spaced_steps():
    assert log_spaced_steps(1000, 4) == {1, 10, 100, 1000}
    assert log_spaced_steps(10, 0) == set()


def test_resumed_run_equals_uninterrupted(tmp_path, crash_at_call):
    base = ["--train.steps=10", "--train.save_every=4", "--data.num_train=128"]
    full = load_config(CONFIG, base + [f"--log.run_dir={tmp_path / 'full'}"])
    sft.train(full)

    crashed = load_config(CONFIG, base + [f"--log.run_dir={tmp_path / 'crash'}"])
    with crash_at_call(sft, "response_nll_sum", 7):  # during step 7, after the step-4 checkpoint
        sft.train(crashed)
    assert [int(p.name.split("_")[1]) for p in list_checkpoints(tmp_path / "crash")] == [4]
    crashed.train.resume = True
    sft.train(crashed)

    a, b = _metrics(tmp_path / "full"), _metrics(tmp_path / "crash")
    assert [x["step"] for x in a] == [x["step"] for x in b]
    for x, y in zip(a, b, strict=True):
        if "loss" in x:
            assert x["loss"] == pytest.approx(y["loss"], rel=1e-6, abs=1e-7)
    wa, wb = _weights(tmp_path / "full" / "final"), _weights(tmp_path / "crash" / "final")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-6, atol=1e-7)


def _torchrun(nproc, run_dir, extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
           "-m", "reasonrl", "sft", "--config", str(CONFIG), f"--log.run_dir={run_dir}", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2", "dion-compressed"])
def test_two_processes_equal_one_with_double_accumulation(tmp_path, strategy):
    common = ["--train.steps=4", "--train.save_every=0", "--data.num_train=64", "--train.eval_examples=4"]
    if strategy == "dion-compressed":  # no DDP: Dion averages its low-rank factors across the 2 ranks itself
        common += ["--dist.strategy=ddp", "--optim.name=dion", "--optim.lr=0.02", "--optim.rank_fraction=0.25",
                   "--train.max_grad_norm=0"]
    else:
        common.append(f"--dist.strategy={strategy}")
    _torchrun(1, tmp_path / "one", common + ["--train.grad_accum=2"])
    _torchrun(2, tmp_path / "two", common + ["--train.grad_accum=1"])
    a, b = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    la, lb = [x["loss"] for x in a if "loss" in x], [x["loss"] for x in b if "loss" in x]
    assert len(la) == len(lb) == 4
    assert la == pytest.approx(lb, rel=1e-5)
    assert [x["tokens_seen"] for x in a if "loss" in x] == [x["tokens_seen"] for x in b if "loss" in x]
    wa, wb = _weights(tmp_path / "one" / "final"), _weights(tmp_path / "two" / "final")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    if strategy == "dion-compressed":  # the thin factors moved, not the full gradient
        sent = [x["dion_comm_bytes"] for x in b if "loss" in x]
        full = 4 * sum(v.numel() for v in wb.values())  # one fp32 all-reduce of every parameter, ring, 2 ranks
        assert all(0 < s < full for s in sent), (sent, full)
        assert all("dion_comm_bytes" not in x for x in a)


def test_bf16_autocast_runs_and_keeps_fp32_weights(tmp_path):
    cfg = load_config(CONFIG, ["--train.steps=3", "--train.save_every=0", "--data.num_train=32",
                               "--train.dtype=bf16", f"--log.run_dir={tmp_path}"])
    sft.train(cfg)
    losses = [x["loss"] for x in _metrics(tmp_path) if "loss" in x]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert all(v.dtype == torch.float32 for v in _weights(tmp_path / "final").values())


def test_malformed_jsonl_sft_data_names_file_and_line(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "response": "b", "answer": "1"}\n{"prompt": "c", "respo\n')
    r = subprocess.run([sys.executable, "-m", "reasonrl", "sft", "--config", str(CONFIG),
                        f"--data.source={data}", f"--log.run_dir={tmp_path / 'run'}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{data}:2" in r.stderr, r.stderr


@pytest.mark.parametrize("name", ["muon", "dion"])
def test_sft_trains_with_muon_and_dion(tmp_path, name):
    cfg = load_config(CONFIG, ["--train.steps=6", "--train.save_every=0", "--data.num_train=64",
                               f"--optim.name={name}", "--optim.lr=0.02", "--optim.scalar_lr=3e-3",
                               f"--log.run_dir={tmp_path}"])
    sft.train(cfg)
    losses = [x["loss"] for x in _metrics(tmp_path) if "loss" in x]
    assert losses[-1] < losses[0]
