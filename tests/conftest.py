"""Shared fixtures: a tokenizer trained on a small synthetic corpus and a micro model (built once per session)."""

from __future__ import annotations

import socket

import pytest
import torch

torch.set_num_threads(1)  # predictable on 2-core machines where tests also start worker processes


@pytest.fixture(scope="session")
def world_tokenizer():
    from reasonrl.model.tokenizer import train_tokenizer
    from reasonrl.tasks import synthetic

    records = synthetic.generate(600, seed=0, difficulty=3, slip_fraction=0.2, alt_fraction=0.2)
    return train_tokenizer([r["prompt"] + "\n" + r["response"] for r in records])


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, world_tokenizer):
    out = tmp_path_factory.mktemp("tokenizer")
    world_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def free_port():
    """`free_port()`: a free localhost TCP port, for the rendezvous of the tests' torch.distributed processes."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick
