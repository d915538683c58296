"""Batch size optimizer (BSO): the client that training scripts use (the server is `zeus.server`)."""

from zeus.optimizer.batch_size.client import (
    BatchSizeOptimizer,
    JobSpec,
    ZeusBSOEarlyStop,
    broadcast_batch_size,
)

__all__ = ["BatchSizeOptimizer", "JobSpec", "ZeusBSOEarlyStop", "broadcast_batch_size"]
