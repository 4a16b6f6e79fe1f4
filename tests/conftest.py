"""Shared test settings."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One intra-op thread: the test models are tiny (threads only add overhead, and on a shared
    2-core machine oversubscription slows a step 100-fold), and summation order stays fixed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The longest test files (tens of seconds each), started first: with one worker per core and each
# file kept in one worker (`make test`: -n auto --dist loadfile), no long file is left to run alone
# at the end.
LONGEST_FIRST = ("test_readme.py", "test_factvae_learning.py", "test_learning.py", "test_draw.py", "test_crash_safety.py", "test_speed.py", "test_distributed.py", "test_hybrid.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
