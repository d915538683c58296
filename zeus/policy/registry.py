"""The one registry of batch-size policies: the names the simulator, job files and the CLI accept.

A policy is named by its registered name (``local-search-ts``, ``pruning-gts``, ``default``,
``grid-search``; the underscore spellings of older job files are aliases) or by ``module:Class``
for your own `zeus.policy.BatchSizeOptimizer` subclass. :func:`make_batch_size_optimizer` builds
either the same way: ``args`` go to the constructor as keyword arguments, and ``seed`` goes to every
constructor that takes one (unless ``args`` already sets it).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from zeus.errors import ZeusConfigError
from zeus.policy.base import BatchSizeOptimizer
from zeus.policy.batch_size import (
    DefaultBatchSizeOptimizer,
    GridSearchBatchSizeOptimizer,
    LocalSearchTSBatchSizeOptimizer,
    PruningGTSBatchSizeOptimizer,
)

BATCH_SIZE_POLICIES: dict[str, type[BatchSizeOptimizer]] = {
    "local-search-ts": LocalSearchTSBatchSizeOptimizer,  # the default, see docs/simulator.md
    "pruning-gts": PruningGTSBatchSizeOptimizer,  # the paper's
    "default": DefaultBatchSizeOptimizer,  # always b0
    "grid-search": GridSearchBatchSizeOptimizer,  # each once, then the best
}
DEFAULT_POLICY = "local-search-ts"
ALIASES = {name.replace("-", "_"): name for name in BATCH_SIZE_POLICIES if "-" in name}


def policy_names() -> str:
    """The registered names, for help texts and error messages."""
    return ", ".join(BATCH_SIZE_POLICIES)


def canonical_name(policy: str) -> str:
    """The registered name of ``policy`` (a name or an alias); ``module:Class`` is returned as is."""
    if ":" in policy:
        return policy
    name = ALIASES.get(policy, policy)
    if name not in BATCH_SIZE_POLICIES:
        raise ZeusConfigError(
            f"unknown policy {policy!r}; valid: {policy_names()}, or 'package.module:Class'"
        )
    return name


def policy_class(policy: str) -> type[BatchSizeOptimizer]:
    """The class of a registered name, an alias or ``module:Class`` (checked to implement the
    `zeus.policy.BatchSizeOptimizer` interface)."""
    name = canonical_name(policy)
    if ":" not in name:
        return BATCH_SIZE_POLICIES[name]
    module_name, _, attr = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ZeusConfigError(f"policy {policy!r} cannot be imported: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, BatchSizeOptimizer)):
        raise ZeusConfigError(f"policy {policy!r} is not a zeus.policy.BatchSizeOptimizer subclass")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise ZeusConfigError(
            f"policy {policy!r} does not implement {', '.join(missing)} of "
            "zeus.policy.BatchSizeOptimizer"
        )
    return cls


def make_batch_size_optimizer(
    policy: str, seed: int | None = None, args: Mapping[str, Any] | None = None
) -> BatchSizeOptimizer:
    """A fresh policy by name or ``module:Class`` with keyword arguments ``args``; ``seed`` goes to
    every constructor that takes one, unless ``args`` sets it."""
    cls = policy_class(policy)
    args = dict(args or {})
    if seed is not None and "seed" in inspect.signature(cls).parameters:
        args.setdefault("seed", seed)
    try:
        return cls(**args)
    except TypeError as e:
        raise ZeusConfigError(f"arguments for policy {policy}: {e}") from e
