"""Optimization policies (pure, seeded, serialisable) and their extension interfaces.

Batch-size policies are named in one registry (`zeus.policy.registry`): ``local-search-ts`` (the
default), ``pruning-gts`` (the paper's), ``default`` and ``grid-search``, or ``module:Class``.
"""

from zeus.policy.base import BatchSizeOptimizer, PowerLimitOptimizer
from zeus.policy.batch_size import (
    DefaultBatchSizeOptimizer,
    GridSearchBatchSizeOptimizer,
    LocalSearchTSBatchSizeOptimizer,
    PruningGTSBatchSizeOptimizer,
)
from zeus.policy.local_search_ts import LocalSearchTSState
from zeus.policy.power_limit import JITPowerLimitOptimizer
from zeus.policy.pruning_gts import NoFeasibleBatchSize, PruningGTSState
from zeus.policy.registry import DEFAULT_POLICY, make_batch_size_optimizer

__all__ = [
    "DEFAULT_POLICY",
    "BatchSizeOptimizer",
    "DefaultBatchSizeOptimizer",
    "GridSearchBatchSizeOptimizer",
    "JITPowerLimitOptimizer",
    "LocalSearchTSBatchSizeOptimizer",
    "LocalSearchTSState",
    "NoFeasibleBatchSize",
    "PowerLimitOptimizer",
    "PruningGTSBatchSizeOptimizer",
    "PruningGTSState",
    "make_batch_size_optimizer",
]
