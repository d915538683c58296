"""Metrics against Default/Oracle on the hand-made trace, and trace loading errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.policy import JITPowerLimitOptimizer, PruningGTSBatchSizeOptimizer
from zeus.simulate import Simulator, load_power_trace, load_train_trace
from zeus.simulate.report import default_config, metrics, oracle_config


def test_metrics_by_hand(toy_traces: tuple[Path, Path], toy_job: Job) -> None:
    train, power = toy_traces
    sim = Simulator(
        str(train), str(power), PruningGTSBatchSizeOptimizer(seed=1), JITPowerLimitOptimizer()
    )
    history = sim.simulate_one_job(toy_job, num_recurrence=2)
    table = sim.table(toy_job)
    default, oracle = default_config(table, 0.5), oracle_config(table, 0.5)
    assert (default.batch_size, default.power_limit, default.energy_j, default.cost) == (
        32,
        200,
        10000,
        10000,
    )
    assert (oracle.batch_size, oracle.power_limit) == (32, 200)  # 64 costs 60000, 16 never reaches
    m = metrics(table, history, 0.5)
    # Recurrence costs: 10200 (profiling run), then 18750 (failed 16) + 10000.
    assert m.cum_regret == pytest.approx(0.02 + 1.875)
    assert m.default_cum_regret == 0
    assert m.all_energy_saving == pytest.approx(1 - (9800 + 22500) / 2 / 10000)
    assert m.last10_time_change == pytest.approx((53 + 125 + 50) / 2 / 50 - 1)
    assert m.conv_rec == 1


def test_retries_enter_expected_cost(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text(
        "dataset,network,batch_size,optimizer,learning_rate,run,target_metric,target_epoch\n"
        "toy,net,32,sgd,0.1,1,0.5,4\n"
        "toy,net,32,sgd,0.1,2,0.5,nan\n"
    )
    power = tmp_path / "p.csv"
    power.write_text(
        "dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"
        "toy,net,32,sgd,100,1.0,100.0\n"
    )
    sim = Simulator(
        str(train), str(power), PruningGTSBatchSizeOptimizer(), JITPowerLimitOptimizer()
    )
    job = Job("toy", "net", "sgd", 0.5, 10, 32)
    # Half the runs never reach: expected epochs (4 + 10) / 1 = 14.
    assert default_config(sim.table(job), 1.0).energy_j == pytest.approx(14 * 100.0)


def test_trace_errors(tmp_path: Path) -> None:
    bad = tmp_path / "train.csv"
    bad.write_text("dataset,network,batch_size\ncifar100,x,1\n")
    with pytest.raises(ZeusConfigError, match=r"lacks column.*optimizer"):
        load_train_trace(str(bad))
    with pytest.raises(ZeusConfigError, match="does not exist"):
        load_power_trace(str(tmp_path / "none.csv"))
    power = tmp_path / "empty.csv"
    power.write_text(
        "dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"
    )
    with pytest.raises(ZeusConfigError, match="has no rows"):
        load_power_trace(str(power))
    v100 = load_power_trace("V100")
    assert v100.gpu == "v100" and v100.max_power_w == 250
    with pytest.raises(ZeusConfigError, match="power trace of v100 has no rows for mnist"):
        v100.table(Job("mnist", "lenet", "sgd", 0.9, 10, 32))
