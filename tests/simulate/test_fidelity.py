"""The simulator against the published simulator's figures (a few fast cells; all 24 in bench/)."""

from __future__ import annotations

import pytest

from zeus.policy import DefaultBatchSizeOptimizer, JITPowerLimitOptimizer
from zeus.simulate import Simulator, workload
from zeus.simulate.fidelity import check_cell
from zeus.simulate.report import default_config, oracle_config
from zeus.simulate.sweep import run_sweep, tasks

# reference-results.md: b0, max PL, Oracle (bs, PL), Oracle vs Default cost (%).
REFERENCE_TABLE = """
cifar100 a40 1024 300 128 225 -59.4 | cifar100 p100 1024 250 128 125 -61.8
cifar100 rtx6000 1024 260 256 125 -50.7 | cifar100 v100 1024 250 128 100 -56.8
imagenet a40 256 300 256 225 -5.8 | imagenet p100 128 250 128 150 -3.3
imagenet rtx6000 256 260 256 200 -4.2 | imagenet v100 256 250 360 175 -5.1
squad a40 32 300 32 225 -4.3 | squad p100 24 250 4 175 -19.1
squad rtx6000 32 260 4 200 -13.9 | squad v100 32 250 12 200 -7.9
librispeech a40 192 300 32 175 -61.8 | librispeech p100 72 250 56 200 -4.8
librispeech rtx6000 128 260 32 175 -45.8 | librispeech v100 192 250 48 150 -29.0
movielens-1m a40 1024 300 16384 100 -59.8 | movielens-1m p100 1024 250 16384 250 -69.9
movielens-1m rtx6000 1024 260 16384 175 -75.6 | movielens-1m v100 1024 250 16384 175 -63.9
sentiment140 a40 128 300 128 200 -4.0 | sentiment140 p100 64 250 32 150 -3.3
sentiment140 rtx6000 128 260 128 260 0.0 | sentiment140 v100 128 250 64 175 -5.4
"""
ROWS = [r.split() for line in REFERENCE_TABLE.strip().splitlines() for r in line.split("|")]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}-{r[1]}" for r in ROWS])
def test_default_and_oracle_match_the_reference_table(row: list[str]) -> None:
    dataset, gpu, b0, max_pl, obs, opl, change = row
    sim = Simulator(None, gpu, DefaultBatchSizeOptimizer(), JITPowerLimitOptimizer())
    table = sim.table(workload(dataset).job())
    default, oracle = default_config(table, 0.5), oracle_config(table, 0.5)
    assert (table.job.default_bs, table.max_power_w) == (int(b0), float(max_pl))
    assert (default.batch_size, default.power_limit) == (int(b0), int(max_pl))
    assert (oracle.batch_size, oracle.power_limit) == (int(obs), int(opl))
    assert round(100 * (oracle.cost / default.cost - 1), 1) == pytest.approx(float(change))


@pytest.mark.parametrize(
    ("dataset", "gpu"), [("imagenet", "p100"), ("sentiment140", "p100"), ("squad", "p100")]
)
def test_paper_policies_match_the_reference_within_noise(dataset: str, gpu: str) -> None:
    results = run_sweep(tasks([dataset], [gpu], range(1, 11), "pruning-gts"), processes=1)
    energy, regret = check_cell(dataset, gpu, [r.metrics for r in results])
    assert energy.ok, energy
    assert regret.ok, regret
