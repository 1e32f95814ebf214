import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train on one CPU thread in tests.

    The models here are tiny, so a second intra-op thread gains little, while on a
    machine whose other core is busy (CI runners, other test suites) two threads stall
    at every parallel region: measured 17x slower. Trials that set
    ``training.numThreads`` still get what they ask for.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
