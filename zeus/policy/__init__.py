"""Optimization policies (pure, seeded, serialisable) and their extension interfaces."""

from zeus.policy.base import BatchSizeOptimizer, PowerLimitOptimizer
from zeus.policy.batch_size import (
    DefaultBatchSizeOptimizer,
    GridSearchBatchSizeOptimizer,
    PruningGTSBatchSizeOptimizer,
)
from zeus.policy.power_limit import JITPowerLimitOptimizer
from zeus.policy.pruning_gts import NoFeasibleBatchSize, PruningGTSState

__all__ = [
    "BatchSizeOptimizer",
    "DefaultBatchSizeOptimizer",
    "GridSearchBatchSizeOptimizer",
    "JITPowerLimitOptimizer",
    "NoFeasibleBatchSize",
    "PowerLimitOptimizer",
    "PruningGTSBatchSizeOptimizer",
    "PruningGTSState",
]
