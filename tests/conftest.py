"""Shared fixtures.

Torch's thread count is process-global. The suite runs on one thread (shared cores,
reproducible timings): it is pinned to 1 when this file is imported, restored to what it was
when the session ends, and put back after every test, so that a test (or a test module at
import) that changes it cannot leak its choice into the tests that follow.
"""

from __future__ import annotations

import pytest
import torch

pytest_plugins = ["pytester"]

#: Torch's thread count before the suite, restored at the end of the session.
_THREADS_BEFORE = torch.get_num_threads()
#: The thread count every test starts with.
SUITE_THREADS = 1
torch.set_num_threads(SUITE_THREADS)


def pytest_sessionfinish(session, exitstatus):
    torch.set_num_threads(_THREADS_BEFORE)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Every test starts on :data:`SUITE_THREADS` threads and leaves them so."""
    torch.set_num_threads(SUITE_THREADS)
    yield
    torch.set_num_threads(SUITE_THREADS)


@pytest.fixture
def one_thread():
    """Pin torch (and deepwave's OpenMP) to one thread: reproducible timings on shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
