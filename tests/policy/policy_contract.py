"""Contract every batch-size / power-limit policy must meet; reuse it for your own policies.

from policy_contract import check_batch_size_optimizer
check_batch_size_optimizer(lambda: MyPolicy(seed=1))
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest

from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.policy import BatchSizeOptimizer, PowerLimitOptimizer

JOB = Job("cifar100", "shufflenetv2", "adadelta", 0.6, 100, 64)
SIZES = [16, 32, 64, 128, 256]


def _outcome(bs: int, step: int) -> tuple[float, bool]:
    """A noisy but deterministic environment: 16 never converges, 64 is the cheapest."""
    cost = 1000.0 + 3.0 * abs(bs - 64) + 7.0 * ((step * 31 + bs) % 5)
    return cost, bs != 16


def _drive(policy: BatchSizeOptimizer, steps: int, start: int = 0) -> list[int]:
    chosen = []
    for step in range(start, start + steps):
        bs = policy.predict(JOB)
        assert bs in SIZES
        chosen.append(bs)
        policy.observe(JOB, bs, *_outcome(bs, step))
    return chosen


def check_batch_size_optimizer(make: Callable[[], BatchSizeOptimizer]) -> None:
    fresh = make()
    with pytest.raises(ZeusConfigError):
        fresh.predict(JOB)
    policy = make()
    policy.register_job(JOB, SIZES)
    _drive(policy, 15)
    # The state is plain JSON and restoring it reproduces every later decision.
    saved = json.loads(json.dumps(policy.state_dict()))
    restored = make()
    restored.load_state_dict(saved)
    twin = copy.deepcopy(policy)
    assert _drive(policy, 20, start=15) == _drive(restored, 20, start=15)
    # A deep copy is independent: driving the original did not move the copy.
    assert json.loads(json.dumps(twin.state_dict())) == saved


def check_power_limit_optimizer(make: Callable[[], PowerLimitOptimizer]) -> None:
    policy = make()
    assert policy.predict(JOB, 64) is None
    for limit, cost in [(250, 12.0), (200, 10.0), (150, 11.0)]:
        policy.observe(JOB, 64, limit, cost)
    chosen = policy.predict(JOB, 64)
    assert chosen in (250, 200, 150)
    restored = make()
    restored.load_state_dict(json.loads(json.dumps(policy.state_dict())))
    assert restored.predict(JOB, 64) == chosen
    assert restored.predict(JOB, 128) is None
