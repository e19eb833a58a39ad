import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests use tiny matrices; on the shared 2-core machine OpenMP threads only contend (40x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
