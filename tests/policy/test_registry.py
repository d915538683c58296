"""The one registry of batch-size policies: names, aliases, module:Class, and clear errors."""

from __future__ import annotations

from abc import ABC
from typing import Any

import pytest

from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.policy import (
    DEFAULT_POLICY,
    BatchSizeOptimizer,
    DefaultBatchSizeOptimizer,
    LocalSearchTSBatchSizeOptimizer,
    PruningGTSBatchSizeOptimizer,
    make_batch_size_optimizer,
)
from zeus.policy.registry import BATCH_SIZE_POLICIES, canonical_name, policy_class


class SeededPolicy(DefaultBatchSizeOptimizer):
    def __init__(self, seed: int = 0, scale: float = 1.0) -> None:
        super().__init__()
        self.seed, self.scale = seed, scale


class NotAPolicy:
    def predict(self, job: Job) -> int:
        return job.default_bs


class HalfAPolicy(BatchSizeOptimizer, ABC):
    def register_job(self, job: Job, batch_sizes: list[int]) -> None:
        """Registers, but neither predicts nor observes."""


def here(name: str) -> str:
    return f"{__name__}:{name}"


def test_one_spelling_and_the_old_aliases() -> None:
    assert list(BATCH_SIZE_POLICIES) == ["local-search-ts", "pruning-gts", "default", "grid-search"]
    assert DEFAULT_POLICY == "local-search-ts"
    assert canonical_name("pruning_gts") == "pruning-gts"
    assert canonical_name("grid_search") == "grid-search"
    assert policy_class("local_search_ts") is LocalSearchTSBatchSizeOptimizer
    assert isinstance(
        make_batch_size_optimizer("pruning_gts", seed=3), PruningGTSBatchSizeOptimizer
    )


def test_seed_goes_to_every_constructor_that_takes_one() -> None:
    policy = make_batch_size_optimizer("local-search-ts", 4, {"window_size": 2})
    assert isinstance(policy, LocalSearchTSBatchSizeOptimizer)
    assert (policy.seed, policy.params["window_size"]) == (4, 2)
    assert make_batch_size_optimizer("local-search-ts", 4, {"seed": 9}).seed == 9  # type: ignore[attr-defined]
    custom = make_batch_size_optimizer(here("SeededPolicy"), 5, {"scale": 2.0})
    assert isinstance(custom, SeededPolicy) and (custom.seed, custom.scale) == (5, 2.0)
    assert isinstance(make_batch_size_optimizer("default", seed=5), DefaultBatchSizeOptimizer)


@pytest.mark.parametrize(
    ("spec", "args", "match"),
    [
        (
            "bandit",
            {},
            r"unknown policy 'bandit'; valid: local-search-ts, pruning-gts, default, "
            r"grid-search, or 'package.module:Class'",
        ),
        ("no.such.module:Policy", {}, "policy 'no.such.module:Policy' cannot be imported"),
        (here("Missing"), {}, "cannot be imported"),
        (here("NotAPolicy"), {}, "is not a zeus.policy.BatchSizeOptimizer subclass"),
        (here("HalfAPolicy"), {}, "does not implement observe, predict of"),
        (
            "local-search-ts",
            {"temperature": 1.0},
            "arguments for policy local-search-ts: .*temperature",
        ),
        ("local-search-ts", {"prior_cv": -1.0}, "prior_cv must be > 0"),
    ],
)
def test_bad_policy_specs_are_one_clear_line(spec: str, args: dict[str, Any], match: str) -> None:
    with pytest.raises(ZeusConfigError, match=match):
        make_batch_size_optimizer(spec, 1, args)
