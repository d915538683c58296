"""Cluster groups: concurrency rules, retries, scaling, trace files and the generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.policy import JITPowerLimitOptimizer, PruningGTSBatchSizeOptimizer
from zeus.simulate import Simulator
from zeus.simulate.groups import (
    Group,
    GroupJob,
    generate_groups,
    load_group_trace,
    write_group_trace,
)


def test_overlapping_jobs_use_best_known_and_failures_retry_at_end(
    toy_traces: tuple[Path, Path], toy_job: Job
) -> None:
    train, power = toy_traces
    sim = Simulator(
        str(train), str(power), PruningGTSBatchSizeOptimizer(seed=1), JITPowerLimitOptimizer(), 1
    )
    group = Group(
        "g",
        "toy",
        (
            GroupJob(0, 10, 2.0),  # alone: explores b0 = 32 (reaches)
            GroupJob(20, 30, 1.0),  # alone: explores 16 (never reaches: fails, retried at 30)
            GroupJob(25, 35, 1.0),  # overlaps job 1: cheapest known (32), not the next exploration
            GroupJob(50, 60, 1.0),  # alone again: 64 cannot start, round 2 explores 32
        ),
    )
    history = sim.simulate_one_alibaba_group(toy_job, group)
    got = [
        (e.job_index, e.attempt, e.start_time, e.end_time, e.batch_size, e.concurrent, e.reached)
        for e in history
    ]
    assert got == [
        (0, 0, 0, 10, 32, False, True),
        (1, 0, 20, 30, 16, False, False),
        (2, 0, 25, 35, 32, True, True),
        (1, 1, 30, 40, 32, True, True),  # the retry starts while job 2 runs
        (3, 0, 50, 60, 32, False, True),
    ]
    # Energy, time and cost are scaled by the job's runtime ratio (job 0: profiling run, x2).
    assert history[0].energy_j == 2 * (1800 + 4 * 2000.0)
    assert history[0].time_s == 2 * (13 + 4 * 10.0)
    assert history[2].energy_j == 5 * 2000.0


def test_group_must_match_job(toy_traces: tuple[Path, Path], toy_job: Job) -> None:
    train, power = toy_traces
    sim = Simulator(
        str(train), str(power), PruningGTSBatchSizeOptimizer(seed=1), JITPowerLimitOptimizer()
    )
    with pytest.raises(ZeusConfigError, match="not of toy"):
        sim.simulate_one_alibaba_group(toy_job, Group("g", "squad", (GroupJob(0, 1, 1),)))
    with pytest.raises(ZeusConfigError, match="no jobs"):
        sim.simulate_one_alibaba_group(toy_job, [])


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".csv.xz"])
def test_trace_file_round_trip(tmp_path: Path, suffix: str) -> None:
    groups = generate_groups(["squad", "imagenet"], 2, seed=5, mean_jobs=6)
    path = tmp_path / f"groups{suffix}"
    write_group_trace(groups, path)
    loaded = load_group_trace(path)
    assert [(g.name, g.dataset, len(g.jobs)) for g in loaded] == [
        (g.name, g.dataset, len(g.jobs)) for g in groups
    ]
    assert loaded[0].jobs[1].start_time == pytest.approx(groups[0].jobs[1].start_time, abs=1e-3)


def test_generator_is_seeded_and_overlaps_some_jobs() -> None:
    a = generate_groups(["cifar100"], 20, seed=1)
    assert a == generate_groups(["cifar100"], 20, seed=1)
    assert a != generate_groups(["cifar100"], 20, seed=2)
    overlapping = total = 0
    for g in a:
        for prev, job in zip(g.jobs, g.jobs[1:], strict=False):
            total += 1
            overlapping += job.start_time < prev.end_time
    assert 0.1 < overlapping / total < 0.45


def test_bad_trace_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("group,start_time,dataset\n")
    with pytest.raises(ZeusConfigError, match=r"lacks column.*end_time, runtime_ratio"):
        load_group_trace(bad)
    bad.write_text("group,start_time,end_time,dataset,runtime_ratio\ng,0,1,mnist,1\n")
    with pytest.raises(ZeusConfigError, match="unknown dataset 'mnist'; valid: cifar100"):
        load_group_trace(bad)
    bad.write_text("group,start_time,end_time,dataset,runtime_ratio\ng,5,1,squad,1\n")
    with pytest.raises(ZeusConfigError, match="end_time must be > start_time"):
        load_group_trace(bad)
    with pytest.raises(ZeusConfigError, match="does not exist"):
        load_group_trace(tmp_path / "missing.csv")
