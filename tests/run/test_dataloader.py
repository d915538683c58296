"""ZeusDataLoader: real training of a tiny model on scikit-learn digits on a replay A40.

Run as a script (``python test_dataloader.py ddp-worker``) it is one rank of the data-parallel test.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from zeus.cost import CostModel
from zeus.errors import ZeusConfigError
from zeus.run import ZeusDataLoader

PROFILE = "a40-resnet50"  # limits 100..300 W in 25 W steps; ZeusCost(0.5) favours 200 W
MAX_LIMIT_W = 300
FAST_PROFILE = (1, 3)  # warmup, measure steps per limit: 9 limits fit in the first epoch
RESULT_KEYS = {
    "job_id",
    "batch_size",
    "power_limit_w",
    "epochs",
    "energy_j",
    "time_s",
    "reached",
    "final_metric",
    "cost",
    "eta_knob",
    "max_power_w",
}


def digits() -> tuple[TensorDataset, TensorDataset]:
    """Train/test split of digits; every sample carries its index so tests can see what was served."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    idx = torch.arange(len(x))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:1400], order[1400:]
    return TensorDataset(x[train], y[train], idx[train]), TensorDataset(x[test], y[test], idx[test])


class Trainer:
    """The spec's usage block, recording what happened at every epoch."""

    def __init__(self, train_loader: ZeusDataLoader, eval_loader: ZeusDataLoader) -> None:
        torch.manual_seed(0)
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.metrics: list[float] = []
        self.seen: list[list[int]] = []
        self.limits_w: list[int] = []
        self.states_after_train: list[str] = []

    def run(self) -> None:
        loss_fn = nn.CrossEntropyLoss()
        for epoch in self.train_loader.epochs():
            assert epoch == len(self.metrics)
            gpus = self.train_loader.monitor.gpus if self.train_loader.monitor else []
            self.limits_w.append(gpus[0].get_power_limit_w() if gpus else -1)
            seen: list[int] = []
            for x, y, idx in self.train_loader:
                self.optimizer.zero_grad()
                loss_fn(self.model(x), y).backward()
                self.optimizer.step()
                seen.extend(idx.tolist())
            self.seen.append(seen)
            engine = self.train_loader.power_limit_optimizer
            self.states_after_train.append(engine.state if engine else "none")
            self.metrics.append(self.accuracy())
            self.train_loader.report_metric(self.metrics[-1], higher_is_better=True)

    def accuracy(self) -> float:
        correct = total = 0
        with torch.no_grad():
            for x, y, _ in self.eval_loader:
                correct += int((self.model(x).argmax(1) == y).sum())
                total += len(y)
        return correct / total


def make_loaders(**train_kwargs: Any) -> tuple[ZeusDataLoader, ZeusDataLoader]:
    train_set, test_set = digits()
    train_kwargs.setdefault("profile_params", FAST_PROFILE)
    batch_size = train_kwargs.pop("batch_size", 32)
    train_loader = ZeusDataLoader(train_set, batch_size=batch_size, shuffle=True, **train_kwargs)
    return train_loader, ZeusDataLoader(test_set, batch_size=256)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models: intra-op threads only add contention on a busy CI CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def replay_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ZEUS_GPU", f"replay:{PROFILE}")
    yield


@pytest.mark.usefixtures("replay_gpu")
def test_stops_at_target_metric(tmp_path: Path) -> None:
    train_loader, eval_loader = make_loaders(max_epochs=30, target_metric=0.9, log_dir=tmp_path)
    trainer = Trainer(train_loader, eval_loader)
    trainer.run()
    first_reaching = next(i for i, m in enumerate(trainer.metrics) if m >= 0.9)
    assert len(trainer.metrics) == first_reaching + 1 < 30
    result = json.loads((tmp_path / "zeus.result.json").read_text())
    assert result["reached"] is True
    assert result["stop_reason"] == "target"
    assert result["epochs"] == len(trainer.metrics)
    assert result["final_metric"] == pytest.approx(trainer.metrics[-1])


@pytest.mark.usefixtures("replay_gpu")
def test_lower_is_better_metric_and_max_epochs(tmp_path: Path) -> None:
    train_loader, eval_loader = make_loaders(max_epochs=3, target_metric=0.0, log_dir=tmp_path)
    trainer = Trainer(train_loader, eval_loader)
    for epoch in train_loader.epochs():
        for _ in train_loader:
            pass
        trainer.accuracy()
        train_loader.report_metric(1.0 - epoch / 10, higher_is_better=False)  # error never 0
    result = json.loads((tmp_path / "zeus.result.json").read_text())
    assert (result["epochs"], result["reached"], result["stop_reason"]) == (3, False, "max_epochs")
    assert result["final_metric"] == pytest.approx(0.8)


@pytest.mark.usefixtures("replay_gpu")
def test_stops_before_an_epoch_that_would_cross_the_cost_threshold(tmp_path: Path) -> None:
    probe, probe_eval = make_loaders(max_epochs=2)
    Trainer(probe, probe_eval).run()
    first, second = (record.cost for record in probe.history)
    thresh = first + 2.5 * second  # room for about two epochs after the profiling one

    train_loader, eval_loader = make_loaders(max_epochs=20, cost_thresh=thresh, log_dir=tmp_path)
    trainer = Trainer(train_loader, eval_loader)
    trainer.run()
    costs = [record.cost for record in train_loader.history]
    assert len(costs) < 20
    for k in range(1, len(costs)):  # every epoch that ran was predicted to stay under
        assert sum(costs[:k]) + costs[k - 1] <= thresh
    assert sum(costs) + costs[-1] > thresh  # and the next one would have crossed
    result = json.loads((tmp_path / "zeus.result.json").read_text())
    assert (result["stop_reason"], result["reached"]) == ("cost_threshold", False)
    assert result["cost"] == pytest.approx(sum(costs))


@pytest.mark.usefixtures("replay_gpu")
def test_tiny_threshold_stops_after_the_first_epoch() -> None:
    train_loader, eval_loader = make_loaders(max_epochs=5, cost_thresh=1e-9)
    Trainer(train_loader, eval_loader).run()
    assert len(train_loader.history) == 1


@pytest.mark.usefixtures("replay_gpu")
def test_result_file_from_zeus_master_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEUS_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("ZEUS_JOB_ID", "digits+mlp+adam+bs64+rec3")
    monkeypatch.setenv("ZEUS_TARGET_METRIC", "0.5")
    monkeypatch.setenv("ZEUS_COST_THRESH", "inf")
    monkeypatch.setenv("ZEUS_ETA_KNOB", "0.3")
    monkeypatch.setenv("ZEUS_PROFILE_PARAMS", "1,2")
    monkeypatch.setenv("ZEUS_USE_OPTIMAL_PL", "true")
    train_set, test_set = digits()
    train_loader = ZeusDataLoader(train_set, batch_size=64, max_epochs=10)
    eval_loader = ZeusDataLoader(test_set, batch_size=256)
    config = train_loader.config
    assert (config.eta_knob, config.warmup_steps, config.profile_steps) == (0.3, 1, 2)
    trainer = Trainer(train_loader, eval_loader)
    trainer.run()

    path = tmp_path / "logs" / "digits+mlp+adam+bs64+rec3.result.json"
    result = json.loads(path.read_text())
    assert set(result) >= RESULT_KEYS
    engine = train_loader.power_limit_optimizer
    assert engine is not None
    history = train_loader.history
    assert result["job_id"] == "digits+mlp+adam+bs64+rec3"
    assert result["batch_size"] == 64
    assert result["power_limit_w"] == engine.chosen_power_limit_w
    assert result["epochs"] == len(history) == len(trainer.metrics)
    assert result["eta_knob"] == 0.3
    assert result["max_power_w"] == MAX_LIMIT_W
    assert result["energy_j"] == pytest.approx(sum(r.energy_j for r in history))
    assert result["time_s"] == pytest.approx(sum(r.time_s for r in history))
    expected_cost = CostModel(0.3, MAX_LIMIT_W).cost(result["energy_j"], result["time_s"])
    assert result["cost"] == pytest.approx(expected_cost)
    # The energy is the replay A40's: its average power lies within the profile's range.
    avg_power_w = result["energy_j"] / result["time_s"]
    assert 116 * 0.95 < avg_power_w < 259 * 1.05


@pytest.mark.usefixtures("replay_gpu")
def test_profiles_in_first_epoch_applies_choice_and_restores_original_limit() -> None:
    from zeus.device import get_gpus
    from zeus.optimizer.power_limit import ZeusCost
    from zeus.optimizer.power_limit.selectors import choose_power_limit

    (gpu,) = get_gpus()
    gpu.set_power_limit_w(275)  # the limit someone else left: it must come back
    train_loader, eval_loader = make_loaders(max_epochs=3, eta_knob=0.5)
    trainer = Trainer(train_loader, eval_loader)
    trainer.run()

    engine = train_loader.power_limit_optimizer
    assert engine is not None
    assert trainer.states_after_train[0] == "done"  # profiling finished inside epoch 0
    chosen_w = engine.chosen_power_limit_w
    measured = set(engine.measurements)
    assert measured == set(range(100, 301, 25))
    assert chosen_w == choose_power_limit(
        list(engine.measurements.values()), ZeusCost(0.5), MAX_LIMIT_W
    )
    assert trainer.limits_w[1:] == [chosen_w, chosen_w]  # applied for the later epochs
    assert gpu.get_power_limit_w() == 275  # restored when training ended


@pytest.mark.usefixtures("replay_gpu")
def test_exception_mid_profiling_restores_the_limit_and_writes_no_result(tmp_path: Path) -> None:
    train_loader, _ = make_loaders(max_epochs=3, log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="out of memory"):
        for _ in train_loader.epochs():
            for step, _batch in enumerate(train_loader):
                if step == 20:  # a few limits into profiling: the GPU is throttled now
                    assert train_loader.monitor is not None
                    assert train_loader.monitor.gpus[0].get_power_limit_w() < MAX_LIMIT_W
                    raise RuntimeError("simulated out of memory")
    assert train_loader.monitor is not None
    assert train_loader.monitor.gpus[0].get_power_limit_w() == MAX_LIMIT_W
    assert not (tmp_path / "zeus.result.json").exists()
    with pytest.raises(ZeusConfigError, match="epochs\\(\\) runs once"):
        train_loader.epochs()


@pytest.mark.usefixtures("replay_gpu")
def test_observe_only_keeps_the_power_limit(tmp_path: Path) -> None:
    train_loader, eval_loader = make_loaders(max_epochs=2, use_optimal_pl=False, log_dir=tmp_path)
    trainer = Trainer(train_loader, eval_loader)
    trainer.run()
    assert train_loader.power_limit_optimizer is None
    assert trainer.limits_w == [MAX_LIMIT_W, MAX_LIMIT_W]
    result = json.loads((tmp_path / "zeus.result.json").read_text())
    assert result["power_limit_w"] == MAX_LIMIT_W
    assert result["energy_j"] > 0


def test_explicit_monitor_is_used_instead_of_zeus_gpu(tmp_path: Path) -> None:
    from zeus.device.replay import ReplayGPU
    from zeus.monitor import ZeusMonitor

    gpu = ReplayGPU("v100-bert-base-uncased")  # 100..250 W; ZEUS_GPU is unset
    monitor = ZeusMonitor(gpus=[gpu], sync_execution_with="none")
    train_loader, eval_loader = make_loaders(max_epochs=2, monitor=monitor, log_dir=tmp_path)
    Trainer(train_loader, eval_loader).run()
    assert train_loader.monitor is monitor
    result = json.loads((tmp_path / "zeus.result.json").read_text())
    assert result["max_power_w"] == 250
    assert result["power_limit_w"] in range(100, 251, 25)
    assert gpu.get_power_limit_w() == 250  # restored


def test_without_a_gpu_measures_time_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEUS_GPU", "none")
    train_loader, eval_loader = make_loaders(max_epochs=1, log_dir=tmp_path)
    Trainer(train_loader, eval_loader).run()
    result = json.loads((tmp_path / "zeus.result.json").read_text())
    assert (result["power_limit_w"], result["energy_j"], result["max_power_w"]) == (None, 0.0, 0.0)
    assert result["time_s"] > 0


@pytest.mark.usefixtures("replay_gpu")
def test_num_workers_serve_every_sample_each_epoch() -> None:
    train_loader, eval_loader = make_loaders(max_epochs=2, num_workers=2)
    trainer = Trainer(train_loader, eval_loader)
    trainer.run()
    all_train = sorted(int(i) for i in train_loader.dataset.tensors[2])
    assert [sorted(seen) for seen in trainer.seen] == [all_train, all_train]
    assert trainer.states_after_train[0] == "done"


# ---------------------------------------------------------------------------------------------
# Configuration and misuse


def test_constructor_arguments_win_over_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ZEUS_ETA_KNOB", "0.9")
    monkeypatch.setenv("ZEUS_TARGET_METRIC", "0.7")
    monkeypatch.setenv("ZEUS_COST_THRESH", "not a number")  # overridden below: ignored
    train_set, _ = digits()
    with caplog.at_level(logging.WARNING, logger="zeus.run.dataloader_config"):
        loader = ZeusDataLoader(
            train_set, batch_size=8, max_epochs=2, eta_knob=0.2, cost_thresh=1e6
        )
    assert (loader.config.eta_knob, loader.config.cost_thresh) == (0.2, 1e6)
    assert loader.config.target_metric == 0.7  # unset argument: from the environment
    assert loader.config.log_dir is None and loader.config.result_path is None  # defaults
    assert "eta_knob=0.2 overrides ZEUS_ETA_KNOB='0.9'" in caplog.text
    assert "ZEUS_COST_THRESH" in caplog.text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ZEUS_ETA_KNOB", "1.5", "ZEUS_ETA_KNOB must be >= 0 and <= 1"),
        ("ZEUS_ETA_KNOB", "half", "ZEUS_ETA_KNOB must be a number"),
        ("ZEUS_COST_THRESH", "-3", "ZEUS_COST_THRESH must be > 0"),
        ("ZEUS_TARGET_METRIC", "nan", "ZEUS_TARGET_METRIC must be a finite number"),
        ("ZEUS_PROFILE_PARAMS", "10", "ZEUS_PROFILE_PARAMS must be 'warmup,measure'"),
        ("ZEUS_PROFILE_PARAMS", "3,0", "ZEUS_PROFILE_PARAMS measure steps must be >= 1"),
        ("ZEUS_USE_OPTIMAL_PL", "maybe", "ZEUS_USE_OPTIMAL_PL must be one of true/false"),
        ("ZEUS_JOB_ID", "../escape", "ZEUS_JOB_ID must be a non-empty file name prefix"),
    ],
)
def test_bad_environment_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    train_set, _ = digits()
    with pytest.raises(ZeusConfigError, match=message):
        ZeusDataLoader(train_set, batch_size=8, max_epochs=2)


def test_bad_constructor_values_name_the_argument() -> None:
    train_set, _ = digits()
    with pytest.raises(ZeusConfigError, match="eta_knob must be >= 0"):
        ZeusDataLoader(train_set, max_epochs=2, eta_knob=-0.1)
    with pytest.raises(ZeusConfigError, match="max_epochs must be >= 1"):
        ZeusDataLoader(train_set, max_epochs=0)


@pytest.mark.usefixtures("replay_gpu")
def test_misuse_gets_clear_errors() -> None:
    train_set, test_set = digits()
    with pytest.raises(ZeusConfigError, match="only apply to the train loader"):
        ZeusDataLoader(test_set, batch_size=8, target_metric=0.9)
    with pytest.raises(ZeusConfigError, match="monitor only apply to the train loader"):
        ZeusDataLoader(test_set, batch_size=8, monitor=object())
    train_loader = ZeusDataLoader(train_set, batch_size=8, max_epochs=2)
    with pytest.raises(ZeusConfigError, match="report_metric\\(\\) must be called inside"):
        train_loader.report_metric(0.5)
    with pytest.raises(ZeusConfigError, match="iterate the train loader inside"):
        iter(train_loader)
    eval_loader = ZeusDataLoader(test_set, batch_size=256)
    with pytest.raises(ZeusConfigError, match="only available on the train loader"):
        eval_loader.epochs()
    assert sum(len(y) for _, y, _ in eval_loader) == len(test_set)  # eval loaders iterate freely


@pytest.mark.usefixtures("replay_gpu")
def test_a_second_train_loader_is_refused_while_one_trains() -> None:
    train_set, test_set = digits()
    train_loader = ZeusDataLoader(train_set, batch_size=64, max_epochs=1)
    mistaken_eval = ZeusDataLoader(test_set, batch_size=256, max_epochs=1)  # max_epochs by mistake
    for _ in train_loader.epochs():
        with pytest.raises(ZeusConfigError, match="another train loader is training"):
            iter(mistaken_eval)
        with pytest.raises(ZeusConfigError, match="another train loader is training"):
            ZeusDataLoader(test_set, batch_size=256, max_epochs=3)
        with pytest.raises(ZeusConfigError, match="another train loader is training"):
            mistaken_eval.epochs()
        for _batch in train_loader:
            pass
    # Once training is over, a new train loader is fine (e.g. the next run of a sweep).
    next_run = ZeusDataLoader(train_set, batch_size=64, max_epochs=1)
    assert next_run.is_train_loader


# ---------------------------------------------------------------------------------------------
# Data parallel: two gloo ranks, each with its own replay GPU


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_distributed_sampler_with_two_gloo_ranks(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "ZEUS_GPU": f"replay:{PROFILE}:2",
        "ZEUS_LOG_DIR": str(tmp_path),
        "ZEUS_JOB_ID": "ddp",
        "ZEUS_PROFILE_PARAMS": "1,2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "ddp-worker", str(tmp_path)],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=120)
        finally:
            proc.kill()
        outputs.append(out)
        assert proc.returncode == 0, out

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["epochs"] == ranks[1]["epochs"] == 3
    train_size = ranks[0]["train_size"]
    for epoch in range(3):
        zero, one = set(ranks[0]["seen"][epoch]), set(ranks[1]["seen"][epoch])
        assert not zero & one  # DistributedSampler split the data
        assert len(zero | one) == train_size
    assert ranks[0]["seen"][0] != ranks[0]["seen"][1]  # set_epoch reshuffled
    assert ranks[0]["chosen_w"] == ranks[1]["chosen_w"] is not None  # one decision for the job
    result = json.loads((tmp_path / "ddp.result.json").read_text())
    assert result["max_power_w"] == 2 * MAX_LIMIT_W  # both ranks' GPUs count in the cost
    assert result["batch_size"] == 2 * 16  # the job's (global) batch size
    assert result["epochs"] == 3
    assert not (tmp_path / "ddp.tmp").exists()


def _ddp_worker(out_dir: Path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    train_set, test_set = digits()
    sampler = DistributedSampler(train_set, shuffle=True, seed=0)
    train_loader = ZeusDataLoader(train_set, batch_size=16, sampler=sampler, max_epochs=3)
    eval_loader = ZeusDataLoader(test_set, batch_size=256)
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seen: list[list[int]] = []
    for _ in train_loader.epochs():
        seen.append([])
        for x, y, idx in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            seen[-1].extend(idx.tolist())
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y, _ in eval_loader)
        train_loader.report_metric(correct / len(test_set))
    engine = train_loader.power_limit_optimizer
    record = {
        "epochs": len(seen),
        "seen": seen,
        "train_size": len(train_set),
        "chosen_w": engine.chosen_power_limit_w if engine else None,
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


if __name__ == "__main__" and sys.argv[1:2] == ["ddp-worker"]:
    _ddp_worker(Path(sys.argv[2]))
