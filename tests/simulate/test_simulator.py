"""Semantics, determinism and purity of `Simulator.simulate_one_job`."""

from __future__ import annotations

from pathlib import Path

import pytest

from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.policy import (
    DefaultBatchSizeOptimizer,
    JITPowerLimitOptimizer,
    PruningGTSBatchSizeOptimizer,
)
from zeus.simulate import HistoryEntry, Simulator, workload


def toy_sim(traces: tuple[Path, Path], seed: int = 1) -> Simulator:
    train, power = traces
    return Simulator(
        str(train),
        str(power),
        PruningGTSBatchSizeOptimizer(seed=seed),
        JITPowerLimitOptimizer(),
        seed,
    )


def test_exact_semantics_on_a_hand_made_trace(toy_traces: tuple[Path, Path], toy_job: Job) -> None:
    history = toy_sim(toy_traces).simulate_one_job(toy_job, num_recurrence=2)
    assert history == [
        # Recurrence 0 at b0, profiling: first epoch = mean over limits (13 s, 1800 J).
        HistoryEntry(0, 32, 200, 1800 + 4 * 2000.0, 13 + 4 * 10.0, True, 2200 + 4 * 2000.0),
        # Recurrence 1 explores 16 (never reaches): stopped before crossing 2 x 10200 = 20400,
        # i.e. after the profiling epoch (5250) and 3 more epochs of 4500.
        HistoryEntry(1, 16, 200, 3500 + 3 * 3000.0, 35 + 3 * 30.0, False, 5250 + 3 * 4500.0),
        # Then 64 cannot fit one epoch: a failure the policy sees, but no record. Round 1 ends
        # with survivors {32}; round 2 runs 32 at its profiled limit.
        HistoryEntry(1, 32, 200, 5 * 2000.0, 5 * 10.0, True, 5 * 2000.0),
    ]


def test_infinite_beta_never_stops_early(toy_traces: tuple[Path, Path], toy_job: Job) -> None:
    history = toy_sim(toy_traces).simulate_one_job(
        toy_job, num_recurrence=2, beta_knob=float("inf")
    )
    failed = [e for e in history if not e.reached]
    assert failed[0].batch_size == 16
    assert failed[0].time_s == 35 + 49 * 30.0  # max_epochs = 50
    assert any(e.batch_size == 64 and e.reached for e in history)


def test_same_seed_same_history_and_policies_untouched() -> None:
    bso, plo = PruningGTSBatchSizeOptimizer(seed=3), JITPowerLimitOptimizer()
    before = (bso.state_dict(), plo.state_dict())
    sim = Simulator(None, "v100", bso, plo, seed=3)
    job = workload("squad").job()
    a = sim.simulate_one_job(job)
    b = sim.simulate_one_job(job)
    assert a == b
    assert (bso.state_dict(), plo.state_dict()) == before
    other = Simulator(
        None, "v100", PruningGTSBatchSizeOptimizer(seed=4), JITPowerLimitOptimizer(), 4
    )
    assert other.simulate_one_job(job) != a
    assert len({(e.recurrence) for e in a}) == 2 * 7 * 7


def test_default_policy_runs_b0_at_the_jit_limit() -> None:
    sim = Simulator(None, "p100", DefaultBatchSizeOptimizer(), JITPowerLimitOptimizer(), seed=1)
    history = sim.simulate_one_job(workload("imagenet").job(), num_recurrence=5)
    assert {e.batch_size for e in history} == {128}  # b0 = 256 capped at p100's largest, 128
    assert {e.power_limit for e in history[1:]} == {150}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta_knob": 1.5}, "eta_knob"),
        ({"beta_knob": 0.0}, "beta_knob"),
        ({"num_recurrence": 0}, "num_recurrence"),
    ],
)
def test_bad_knobs(kwargs: dict[str, float], match: str) -> None:
    sim = Simulator(None, "v100", DefaultBatchSizeOptimizer(), JITPowerLimitOptimizer())
    with pytest.raises(ZeusConfigError, match=match):
        sim.simulate_one_job(workload("squad").job(), **kwargs)  # type: ignore[arg-type]


def test_bad_jobs_are_refused_before_simulating() -> None:
    sim = Simulator(None, "v100", DefaultBatchSizeOptimizer(), JITPowerLimitOptimizer())
    with pytest.raises(ZeusConfigError, match=r"b0 .*100.* valid: 8, 16, 32"):
        sim.simulate_one_job(workload("cifar100").job(default_bs=100))
    with pytest.raises(ZeusConfigError, match="never reaches target"):
        sim.simulate_one_job(workload("imagenet").job(default_bs=64))
    with pytest.raises(ZeusConfigError, match=r"valid targets: .*0.6"):
        sim.simulate_one_job(workload("cifar100").job(target_metric=0.61))
    with pytest.raises(ZeusConfigError, match=r"valid: .*cifar100/shufflenetv2/adadelta"):
        sim.simulate_one_job(Job("mnist", "lenet", "sgd", 0.9, 10, 32))
    with pytest.raises(ZeusConfigError, match="unknown GPU 'h100'; valid: a40"):
        Simulator(None, "h100", DefaultBatchSizeOptimizer(), JITPowerLimitOptimizer())


class _Stubborn(DefaultBatchSizeOptimizer):
    """A user policy with a bug: proposes a batch size that is not a candidate."""

    def predict(self, job: Job) -> int:
        return 1000


def test_a_policy_proposing_a_foreign_batch_size_is_named() -> None:
    sim = Simulator(None, "v100", _Stubborn(), JITPowerLimitOptimizer())
    with pytest.raises(ZeusConfigError, match="_Stubborn proposed batch size 1000, not one of"):
        sim.simulate_one_job(workload("squad").job(), num_recurrence=1)
