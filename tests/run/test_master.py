"""ZeusMaster drives real subprocesses: a small numpy training job (master_job_script.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from zeus.cost import CostModel
from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.policy import PruningGTSBatchSizeOptimizer
from zeus.policy.base import BatchSizeOptimizer
from zeus.run.history import load_series
from zeus.run.master import SeriesFailedError, SeriesMismatchError, ZeusMaster

SCRIPT = Path(__file__).with_name("master_job_script.py")


class CyclePolicy(BatchSizeOptimizer):
    """Cycles through the batch sizes, advancing on every observation; remembers what it saw."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.position = 0
        self.seen: list[tuple[int, float, bool]] = []

    def register_job(self, job: Job, batch_sizes: list[int]) -> None:
        self.sizes = sorted(batch_sizes)

    def predict(self, job: Job) -> int:
        return self.sizes[self.position % len(self.sizes)]

    def observe(
        self, job: Job, batch_size: int, cost: float, converged: bool | None = None
    ) -> None:
        self.position += 1
        self.seen.append((batch_size, cost, bool(converged)))

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = state["position"]
        self.seen = [tuple(s) for s in state["seen"]]  # type: ignore[misc]


def make_job(tmp_path: Path, *extra: str, target: float = 0.9, optimizer: str = "sgd") -> Job:
    command = (sys.executable, str(SCRIPT), "--bs", "{bs}", "--lr", "{lr}", "--epochs", "{epochs}")
    return Job(
        dataset="synthetic",
        network="logreg",
        optimizer=optimizer,
        target_metric=target,
        max_epochs=5,
        default_bs=32,
        default_lr=0.4,
        workdir=str(tmp_path),
        command=(*command, "--seed", "{seed}", *extra),
    )


def test_series_runs_records_and_feeds_the_policy(tmp_path: Path) -> None:
    policy = CyclePolicy()
    master = ZeusMaster(policy, tmp_path / "run", eta_knob=0.3, beta_knob=2.0, seed=7)
    state = master.run(make_job(tmp_path), [16, 32, 64], num_recurrence=4)

    assert [r.batch_size for r in state.runs] == [16, 32, 64, 16]
    assert all(r.status == "reached" for r in state.runs)
    # lr scaled linearly for SGD from 0.4 at b0=32; seeds are seed + run index
    assert [r.learning_rate for r in state.runs] == pytest.approx([0.2, 0.4, 0.8, 0.2])
    assert state.runs[2].command[state.runs[2].command.index("--lr") + 1] == "0.8"
    assert [r.seed for r in state.runs] == [7, 8, 9, 10]
    log_dir = tmp_path / "run" / "logs"
    for run in state.runs:
        result = json.loads((log_dir / f"{run.job_id}.result.json").read_text())
        assert run.cost == pytest.approx(
            CostModel(0.3, 200.0).cost(result["energy_j"], result["time_s"])
        )
        assert "epoch 1: accuracy" in Path(run.log_path).read_text()
    # the policy observed exactly the recorded costs, in order
    assert policy.seen == [(r.batch_size, r.cost, True) for r in state.runs]
    # the first run had no budget; later ones get beta * min_cost of earlier recurrences
    envs = [json.loads((log_dir / f"{r.job_id}.env.json").read_text()) for r in state.runs]
    assert envs[0]["ZEUS_COST_THRESH"] == "inf"
    first_two_min = min(state.runs[0].cost or 0, state.runs[1].cost or 0)
    assert float(envs[2]["ZEUS_COST_THRESH"]) == pytest.approx(2.0 * first_two_min)
    assert envs[1]["ZEUS_ETA_KNOB"] == "0.3"
    assert envs[1]["ZEUS_TARGET_METRIC"] == "0.9"
    assert envs[1]["ZEUS_JOB_ID"] == state.runs[1].job_id
    assert envs[1]["ZEUS_USE_OPTIMAL_PL"] == "true"
    assert "ZEUS_STATE_DIR" in envs[1]  # passed through from the driver's environment
    saved = load_series(tmp_path / "run")
    assert saved is not None and saved.completed_recurrences == 4
    assert saved.policy_state == {"position": 4, "seen": [list(s) for s in policy.seen]}


def test_resume_continues_where_the_series_stopped(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    first = ZeusMaster(CyclePolicy(), tmp_path / "run", seed=1).run(job, [16, 32, 64], 2)
    assert [r.batch_size for r in first.runs] == [16, 32]

    policy = CyclePolicy()
    resumed = ZeusMaster(policy, tmp_path / "run", seed=1).run(job, [16, 32, 64], 4)
    assert [r.batch_size for r in resumed.runs] == [16, 32, 64, 16]
    assert [r.job_id for r in resumed.runs[:2]] == [r.job_id for r in first.runs]
    assert len(policy.seen) == 4  # restored the two observations, then made two more

    saved = (tmp_path / "run" / "series.json").read_bytes()
    with pytest.raises(SeriesMismatchError, match=r"job.target_metric: 0.9 saved, 0.8 now") as e:
        ZeusMaster(CyclePolicy(), tmp_path / "run", seed=2).run(
            make_job(tmp_path, target=0.8), [16, 32, 64], 5
        )
    assert e.value.differences == ["seed: 1 saved, 2 now", "job.target_metric: 0.9 saved, 0.8 now"]
    assert (tmp_path / "run" / "series.json").read_bytes() == saved  # refused before any write


def test_crashing_run_is_recorded_failed_and_retried(tmp_path: Path) -> None:
    policy = CyclePolicy()
    job = make_job(tmp_path, "--crash-bs", "32")
    state = ZeusMaster(policy, tmp_path / "run").run(job, [16, 32, 64], 3)

    crashed = [r for r in state.runs if r.status == "crashed"]
    assert len(crashed) == 1 and crashed[0].batch_size == 32
    assert crashed[0].exit_code == 1
    assert "simulated out-of-memory" in Path(crashed[0].log_path).read_text()
    assert crashed[0].cost is None and crashed[0].recurrence == 2 and crashed[0].try_number == 1
    # the crash was observed as an expensive failure, after which recurrence 2 was retried
    assert policy.seen[1][0] == 32 and policy.seen[1][2] is False
    assert policy.seen[1][1] == pytest.approx(100 * 2.0 * (state.runs[0].cost or 0))
    assert [(r.recurrence, r.try_number, r.status) for r in state.runs] == [
        (1, 1, "reached"),
        (2, 1, "crashed"),
        (2, 2, "reached"),
        (3, 1, "reached"),
    ]
    assert state.recurrences()[1].reached and len(state.recurrences()[1].runs) == 2


def test_job_that_always_crashes_stops_the_series(tmp_path: Path) -> None:
    job = make_job(tmp_path, "--crash-bs", "32")
    with pytest.raises(SeriesFailedError, match="crashed 3 times in a row") as info:
        ZeusMaster(CyclePolicy(), tmp_path / "run").run(
            dataclasses.replace(job, default_bs=32), [32], 2
        )
    assert "logs" in str(info.value)
    saved = load_series(tmp_path / "run")
    assert saved is not None and [r.status for r in saved.runs] == ["crashed"] * 3


def test_unreachable_target_is_a_failed_run_and_tries_are_bounded(tmp_path: Path) -> None:
    job = make_job(tmp_path, target=0.999)
    with pytest.raises(SeriesFailedError, match="recurrence 1 failed 2 times"):
        ZeusMaster(CyclePolicy(), tmp_path / "run", max_tries=2).run(job, [16, 32], 1)
    saved = load_series(tmp_path / "run")
    assert saved is not None
    assert [(r.status, r.epochs, r.exit_code) for r in saved.runs] == [("failed", 5, 0)] * 2
    assert all(r.cost is not None and r.cost > 0 for r in saved.runs)


def test_unknown_placeholder_is_rejected_before_launching(tmp_path: Path) -> None:
    job = make_job(tmp_path, "--width", "{width}")
    with pytest.raises(ZeusConfigError, match=r"\{width\}.*allowed: \{bs\}"):
        ZeusMaster(CyclePolicy(), tmp_path / "run").run(job, [16, 32], 1)
    assert not (tmp_path / "run" / "logs").exists()


def test_bad_arguments_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ZeusConfigError, match="eta_knob"):
        ZeusMaster(CyclePolicy(), tmp_path, eta_knob=1.5)
    with pytest.raises(ZeusConfigError, match="default_bs 32 must be one of"):
        ZeusMaster(CyclePolicy(), tmp_path).run(make_job(tmp_path), [16, 64], 1)


def _interrupt_when_started(log_dir: Path, signum: int) -> threading.Thread:
    """Signal this process as soon as the first run has started (its env file exists)."""

    def wait_then_interrupt() -> None:
        deadline = time.monotonic() + 60
        while not list(log_dir.glob("*.env.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=wait_then_interrupt, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_the_child_saves_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    job = make_job(tmp_path)
    run_dir = tmp_path / "run"
    monkeypatch.setenv("TEST_SLEEP_S", "30")  # the first run would take minutes
    thread = _interrupt_when_started(run_dir / "logs", signum)
    with pytest.raises(KeyboardInterrupt):
        ZeusMaster(CyclePolicy(), run_dir).run(job, [16, 32], 2)
    thread.join()
    saved = load_series(run_dir)
    assert saved is not None and [r.status for r in saved.runs] == ["interrupted"]
    interrupted = saved.runs[0]
    assert (run_dir / "logs" / f"{interrupted.job_id}.terminated").exists()  # got SIGTERM
    assert "got SIGTERM" in Path(interrupted.log_path).read_text()

    monkeypatch.delenv("TEST_SLEEP_S")
    policy = CyclePolicy()
    state = ZeusMaster(policy, run_dir).run(job, [16, 32], 2)
    assert [(r.recurrence, r.batch_size, r.status) for r in state.runs] == [
        (1, 16, "interrupted"),
        (1, 16, "reached"),
        (2, 32, "reached"),
    ]
    assert [s[0] for s in policy.seen] == [16, 32]  # the interrupted run was never observed


def test_pruning_gts_state_round_trips_through_the_series_file(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    first = PruningGTSBatchSizeOptimizer(seed=3)
    ZeusMaster(first, tmp_path / "run").run(job, [16, 32, 64], 3)
    saved = load_series(tmp_path / "run")
    assert saved is not None and saved.policy_state == json.loads(json.dumps(first.state_dict()))

    resumed = PruningGTSBatchSizeOptimizer(seed=3)
    ZeusMaster(resumed, tmp_path / "run").run(job, [16, 32, 64], 3)  # all done: nothing launched
    assert resumed.state_dict() == first.state_dict()
    assert resumed.predict(job) == first.predict(job)  # the same next decision
    # pruning explored the default first, then smaller batch sizes
    assert [r.batch_size for r in saved.runs][:2] == [32, 16]
