"""Every built-in policy meets the extension-interface contract."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.policy.policy_contract import check_batch_size_optimizer, check_power_limit_optimizer
from zeus.policy import (
    BatchSizeOptimizer,
    DefaultBatchSizeOptimizer,
    GridSearchBatchSizeOptimizer,
    JITPowerLimitOptimizer,
    LocalSearchTSBatchSizeOptimizer,
    PruningGTSBatchSizeOptimizer,
)

MAKERS: list[Callable[[], BatchSizeOptimizer]] = [
    lambda: PruningGTSBatchSizeOptimizer(seed=9),
    lambda: PruningGTSBatchSizeOptimizer(seed=9, num_pruning_rounds=0, window_size=3),
    lambda: LocalSearchTSBatchSizeOptimizer(seed=9),
    lambda: LocalSearchTSBatchSizeOptimizer(seed=9, window_size=3, concurrency=True),
    DefaultBatchSizeOptimizer,
    GridSearchBatchSizeOptimizer,
]


@pytest.mark.parametrize(
    "make",
    MAKERS,
    ids=["pruning-gts", "gts-windowed", "local-search-ts", "lsts-windowed", "default", "grid"],
)
def test_batch_size_policies(make: Callable[[], BatchSizeOptimizer]) -> None:
    check_batch_size_optimizer(make)


def test_jit_power_limit_policy() -> None:
    check_power_limit_optimizer(JITPowerLimitOptimizer)
