"""DESIGN principle 1: every host decides exactly as the shared policy core does.

One observation sequence goes to `zeus.policy.pruning_gts` in process and to the server over HTTP
(its state stored in the database between requests); every decision must be the same, through
pruning and into Thompson sampling, whose RNG state survives the round trips through the database.
The simulator and ZeusMaster, for every per-job-core policy, decide as the core fed the observation
sequence they produced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import job_spec
from tests.server.test_api import register, report
from zeus.cost import zeus_cost
from zeus.job import Job
from zeus.policy import JITPowerLimitOptimizer, make_batch_size_optimizer, pruning_gts
from zeus.policy.batch_size import PerJobCoreOptimizer, _seed_int
from zeus.policy.registry import policy_class
from zeus.run.history import load_series
from zeus.run.master import ZeusMaster
from zeus.simulate import Simulator, workload

MASTER_JOB_SCRIPT = Path(__file__).parents[1] / "run" / "master_job_script.py"

BATCH_SIZES = [16, 32, 64, 128, 256]
ETA, MAX_POWER_W, BETA, MAX_EPOCHS = 0.5, 300.0, 2.0, 10


def _outcome(rng: np.random.Generator, batch_size: int) -> tuple[float, float, bool]:
    """A synthetic run: (time_s, energy_j, reached) — 16 never reaches the target."""
    time_s = 100.0 * (1 + 0.1 * abs(np.log2(batch_size / 64))) * rng.uniform(0.7, 1.3)
    return time_s, 200.0 * time_s, batch_size != 16


def test_server_decisions_equal_policy_core(client: TestClient) -> None:
    spec = job_spec(
        batch_sizes=BATCH_SIZES,
        default_batch_size=64,
        mab_seed=11,
        beta_knob=BETA,
        max_epochs=MAX_EPOCHS,
        eta_knob=ETA,
        max_power=MAX_POWER_W,
        num_pruning_rounds=2,
    )
    job_id = register(client, **spec)["job_id"]
    state = pruning_gts.new_state(BATCH_SIZES, 64, seed=11, num_pruning_rounds=2)
    rng = np.random.default_rng(0)
    decisions = []
    for _ in range(40):
        expected, exploration = pruning_gts.next_batch_size(state)
        trial = client.get("/jobs/batch_size", params={"job_id": job_id}).json()
        assert trial["batch_size"] == expected
        decisions.append(expected)
        time_s, energy_j, reached = _outcome(rng, expected)
        cost = zeus_cost(energy_j, time_s, ETA, MAX_POWER_W)
        within = state.min_cost is None or cost <= BETA * state.min_cost
        answer = report(
            client,
            trial,
            time=time_s,
            energy=energy_j,
            metric=0.9 if reached else 0.1,
            current_epoch=MAX_EPOCHS,
        )
        assert answer["converged"] == (reached and within)
        pruning_gts.observe(state, expected, cost, reached and within, exploration)
    assert state.stage == pruning_gts.STAGE_BANDIT  # the sequence reached Thompson sampling
    assert len(set(decisions[-20:])) > 1  # and sampling still explores between arms
    detail = client.get(f"/jobs/{job_id}").json()
    assert detail["stage"] == "bandit"
    assert (
        detail["min_cost"] == state.min_cost and detail["min_cost_batch_size"] == state.min_cost_bs
    )


# The simulator and ZeusMaster host every per-job-core policy through the same wrapper
# (`zeus.policy.batch_size.PerJobCoreOptimizer`); each must decide as the pure core does when fed the
# observation sequence that host produced. (The server side of the new policy comes with phase 2.)
CORE_POLICIES = ["pruning-gts", "local-search-ts"]


def _replay_through_core(
    policy: PerJobCoreOptimizer,
    seed: int,
    batch_sizes: list[int],
    default_bs: int,
    steps: list[tuple[int, tuple[float, bool] | None]],
) -> Any:
    """Feed (decision, observation or None) steps to a fresh core state; assert every decision."""
    core = policy.core
    state = core.new_state(batch_sizes, default_bs, seed=_seed_int([seed, 0]), **policy.params)
    for n, (decided, observed) in enumerate(steps):
        if state.exploration_in_flight is not None:  # a serial host gets the same exploration again
            expected = state.exploration_in_flight
        else:
            expected = core.next_batch_size(state)[0]
        assert decided == expected, f"decision {n}"
        if observed is not None:
            was_exploration = decided == state.exploration_in_flight
            core.observe(state, decided, observed[0], observed[1], was_exploration)
    return state


@pytest.mark.parametrize("name", CORE_POLICIES)
@pytest.mark.parametrize(("dataset", "gpu"), [("imagenet", "v100"), ("movielens-1m", "a40")])
def test_simulator_decides_as_the_policy_core(name: str, dataset: str, gpu: str) -> None:
    steps: list[tuple[int, tuple[float, bool] | None]] = []

    class Recording(policy_class(name)):  # type: ignore[misc]
        """Records what the simulator's copy of the policy is asked and told."""

        def predict(self, job: Job) -> int:
            decided = super().predict(job)
            steps.append((decided, None))
            return decided

        def observe(
            self, job: Job, batch_size: int, cost: float, converged: bool | None = None
        ) -> None:
            assert steps[-1] == (
                batch_size,
                None,
            )  # serial: each decision is observed before the next
            steps[-1] = (batch_size, (cost, converged is not False))
            super().observe(job, batch_size, cost, converged)

    policy = Recording(seed=7)
    sim = Simulator(None, gpu, policy, JITPowerLimitOptimizer(), seed=7)
    job = workload(dataset).job()
    history = sim.simulate_one_job(job, num_recurrence=60)
    table = sim.table(job)
    runs = iter(history)
    entry = next(runs, None)
    for bs, observed in steps:  # the runs in order; between them, tries that never started
        assert observed is not None  # serial: every decision is observed
        if entry is not None and (bs, *observed) == (entry.batch_size, entry.cost, entry.reached):
            entry = next(runs, None)
        else:
            assert observed[1] is False  # a phantom failure: not even one epoch fitted the budget
    assert entry is None
    state = _replay_through_core(policy, 7, list(table.batch_sizes), table.job.default_bs, steps)
    assert state.min_cost == min(e.cost for e in history if e.reached)
    assert len({bs for bs, _ in steps}) > 2  # the sequence explored


@pytest.mark.parametrize("name", CORE_POLICIES)
def test_zeus_master_decides_as_the_policy_core(name: str, tmp_path: Path) -> None:
    job = Job(
        dataset="synthetic",
        network="logreg",
        optimizer="sgd",
        target_metric=0.9,
        max_epochs=5,
        default_bs=32,
        default_lr=0.4,
        workdir=str(tmp_path),
        command=(sys.executable, str(MASTER_JOB_SCRIPT), "--bs", "{bs}", "--lr", "{lr}",
                 "--epochs", "{epochs}", "--seed", "{seed}"),
    )  # fmt: skip
    sizes = [8, 16, 32, 64, 128]
    policy = make_batch_size_optimizer(name, 5)
    assert isinstance(policy, PerJobCoreOptimizer)
    series = ZeusMaster(policy, tmp_path / "run", beta_knob=2.0, seed=1).run(job, sizes, 6)
    steps: list[tuple[int, tuple[float, bool] | None]] = [
        (r.batch_size, None if r.policy_cost is None else (r.policy_cost, r.reached))
        for r in series.runs
    ]
    state = _replay_through_core(policy, 5, sizes, 32, steps)
    saved = load_series(tmp_path / "run")
    assert saved is not None and saved.policy_state is not None
    assert saved.policy_state["jobs"][0]["state"] == json.loads(json.dumps(state.to_dict()))
