"""The policy objects behind the extension interfaces, and learning-rate scaling."""

from __future__ import annotations

import copy
import json
import math

import pytest

from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.optimizer.power_limit.selectors import (
    PowerLimitMeasurement,
    SelectionContext,
    ZeusCost,
    choose_power_limit,
)
from zeus.policy import (
    DefaultBatchSizeOptimizer,
    GridSearchBatchSizeOptimizer,
    JITPowerLimitOptimizer,
    PruningGTSBatchSizeOptimizer,
)
from zeus.policy.lr_scaling import rule_for_optimizer, scale_lr

JOB = Job("cifar100", "shufflenetv2", "adadelta", 0.6, 100, 32)
SIZES = [8, 16, 32, 64]


def cost_of(bs: int) -> tuple[float, bool]:
    return {8: (9.0, False), 16: (4.0, True), 32: (5.0, True), 64: (6.0, True)}[bs]


def drive(policy: PruningGTSBatchSizeOptimizer, steps: int) -> list[int]:
    chosen = []
    for i in range(steps):
        bs = policy.predict(JOB)
        chosen.append(bs)
        cost, ok = cost_of(bs)
        policy.observe(JOB, bs, cost * (1 + 0.01 * (i % 3)), ok)
    return chosen


def test_pruning_gts_wrapper_state_dict_round_trip() -> None:
    policy = PruningGTSBatchSizeOptimizer(seed=5)
    policy.register_job(JOB, SIZES)
    assert drive(policy, 7)[:4] == [32, 16, 8, 64]
    saved = json.loads(json.dumps(policy.state_dict()))
    clone = PruningGTSBatchSizeOptimizer()
    clone.load_state_dict(saved)
    assert drive(policy, 20) == drive(clone, 20)


def test_same_seed_same_decisions_and_jobs_get_independent_streams() -> None:
    a, b = PruningGTSBatchSizeOptimizer(seed=5), PruningGTSBatchSizeOptimizer(seed=5)
    a.register_job(JOB, SIZES)
    b.register_job(JOB, SIZES)
    assert drive(a, 30) == drive(b, 30)
    other = Job("cifar100", "shufflenetv2", "adadelta", 0.5, 100, 32)
    a.register_job(other, SIZES)
    assert a.states[other].rng_state != a.states[JOB].rng_state


def test_unregistered_job_is_a_clear_error() -> None:
    with pytest.raises(ZeusConfigError, match="not registered"):
        PruningGTSBatchSizeOptimizer().predict(JOB)
    with pytest.raises(ZeusConfigError, match="default batch size 32"):
        PruningGTSBatchSizeOptimizer().register_job(JOB, [8, 16])


def test_concurrency_flag() -> None:
    serial = PruningGTSBatchSizeOptimizer(seed=1)
    serial.register_job(JOB, SIZES)
    assert [serial.predict(JOB), serial.predict(JOB)] == [32, 32]
    parallel = PruningGTSBatchSizeOptimizer(seed=1, concurrency=True)
    parallel.register_job(JOB, SIZES)
    parallel.predict(JOB)
    parallel.observe(JOB, 32, 5.0, True)
    assert parallel.predict(JOB) == 16  # the next exploration
    assert parallel.predict(JOB) == 32  # concurrent: cheapest known


def test_default_and_grid_search() -> None:
    default = DefaultBatchSizeOptimizer()
    default.register_job(JOB, SIZES)
    assert default.predict(JOB) == 32
    grid = GridSearchBatchSizeOptimizer()
    grid.register_job(JOB, SIZES)
    seen = []
    for _ in range(6):
        bs = grid.predict(JOB)
        seen.append(bs)
        grid.observe(JOB, bs, *cost_of(bs))
    assert seen == [32, 8, 16, 64, 16, 16]
    clone = GridSearchBatchSizeOptimizer()
    clone.load_state_dict(json.loads(json.dumps(grid.state_dict())))
    assert clone.predict(JOB) == 16


def test_jit_power_limit() -> None:
    plo = JITPowerLimitOptimizer()
    assert plo.predict(JOB, 32) is None
    for pl, c in [(250, 10.0), (200, 8.0), (150, 8.0), (100, 12.0)]:
        plo.observe(JOB, 32, pl, c)
    assert plo.predict(JOB, 32) == 150  # ties: the lower limit (the same cost for less power)
    assert plo.predict(JOB, 64) is None
    clone = JITPowerLimitOptimizer()
    clone.load_state_dict(json.loads(json.dumps(plo.state_dict())))
    assert clone.predict(JOB, 32) == 150
    assert copy.deepcopy(plo).epoch_costs == plo.epoch_costs


def test_simulator_and_training_break_power_limit_ties_by_one_rule() -> None:
    """The simulator's JIT policy and the selectors of real training pick the same limit."""
    per_limit = {250: (200.0, 1.0), 200: (150.0, 1.0), 150: (70.0, 1.25), 100: (60.0, 1.6)}
    selector = ZeusCost(eta_knob=0.5)
    # 200 and 150 cost the same per step: (0.5·150 + 0.5·250)·1.0 = (0.5·70 + 0.5·250)·1.25.
    scores = selector.scores(
        [PowerLimitMeasurement(pl, t, p * t) for pl, (p, t) in per_limit.items()],
        SelectionContext(max_power_limit_w=250),
    )
    assert scores[200] == scores[150] < min(scores[250], scores[100])
    plo = JITPowerLimitOptimizer()
    for pl in sorted(per_limit, reverse=True):  # profiled high to low, as the simulator does
        plo.observe(JOB, 32, pl, scores[pl])
    trained = choose_power_limit({pl: v for pl, v in per_limit.items()}, selector, 250)
    assert plo.predict(JOB, 32) == trained == 150


def test_lr_scaling() -> None:
    assert scale_lr(0.1, 1024, 256, optimizer="AdamW") == pytest.approx(0.05)
    assert scale_lr(0.1, 128, 256, optimizer="sgd") == pytest.approx(0.2)
    assert scale_lr(0.1, 128, 512, rule="sqrt") == pytest.approx(0.2)
    assert scale_lr(0.1, 128, 512, optimizer="sgd", rule="none") == 0.1
    assert rule_for_optimizer("adadelta") == "sqrt"
    with pytest.raises(ZeusConfigError, match=r"lion.*known: "):
        scale_lr(0.1, 128, 256, optimizer="lion")
    with pytest.raises(ZeusConfigError, match="batch_size"):
        scale_lr(0.1, 128, 0, rule="linear")
    assert math.isclose(scale_lr(4e-7, 128, 32, optimizer="adamw"), 2e-7)
