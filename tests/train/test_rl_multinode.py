"""Several machines: two `torchrun` launchers on this machine act as two nodes (`--nnodes 2`, one process each) that
meet through a c10d rendezvous, and run 2 GRPO steps under FSDP2 with the README's command. Slow: two launchers
start two interpreters each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import _rl_fsdp2_worker as w  # noqa: E402

from reasonrl.train.checkpoint import STATE_FILE  # noqa: E402

TIMEOUT_S = 300


def _node(rank: int, port: int, args: list[str], log: Path) -> subprocess.Popen:
    """One node's launcher: c10d rendezvous at 127.0.0.1:port; node 0 hosts the rendezvous store."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
           "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=reasonrl-test",
           f"--rdzv_conf=is_host={int(rank == 0)}", "--local_addr=127.0.0.1", "-m", "reasonrl", "rl", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    # a session of its own: on a hang the launcher and its worker are killed together
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.mark.slow
def test_two_nodes_run_grpo_under_fsdp2(tmp_path, world_tokenizer, free_port):
    model_dir, data = w.write_inputs(tmp_path, world_tokenizer)
    run = tmp_path / "run"
    args = w.overrides(model_dir, data, run, "grpo", "--train.steps=2")
    logs = [tmp_path / f"node{r}.log" for r in range(2)]
    port = free_port()
    nodes = [_node(r, port, args, logs[r]) for r in range(2)]
    deadline = time.monotonic() + TIMEOUT_S
    try:
        codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in nodes]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p in nodes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    tails = "\n".join(log.read_text()[-3000:] for log in logs)
    assert codes is not None, f"the two nodes did not finish in {TIMEOUT_S} s:\n{tails}"
    assert codes == [0, 0], tails
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in steps if "policy_loss" in x] == [1, 2]
    assert all(x["num_responses"] == 2 * w.G for x in steps if "policy_loss" in x)
    last = run / "checkpoints" / "step_0000002"
    assert torch.load(last / STATE_FILE, weights_only=False)["optimizer_shards"] == 2  # 2 processes, FSDP2
    assert (last / "rank0.pt").is_file() and (last / "rank1.pt").is_file()
    start, final = load_file(str(model_dir / "model.safetensors")), load_file(str(run / "final" / "model.safetensors"))
    assert max((final[k] - start[k]).abs().max().item() for k in start) > 1e-3
