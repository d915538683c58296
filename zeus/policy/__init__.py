"""Optimization policies (pure, seeded, serialisable) and their extension interfaces."""

from zeus.policy.base import BatchSizeOptimizer, PowerLimitOptimizer

__all__ = ["BatchSizeOptimizer", "PowerLimitOptimizer"]
