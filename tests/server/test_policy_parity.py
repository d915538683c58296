"""One policy core, three hosts: the server decides exactly as the shared policy core does.

One observation sequence goes to `zeus.policy.pruning_gts` in process and to the server over HTTP
(its state stored in the database between requests); every decision must be the same, through
pruning and into Thompson sampling, whose RNG state survives the round trips through the database.
"""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from tests.server.conftest import job_spec
from tests.server.test_api import register, report
from zeus.cost import zeus_cost
from zeus.policy import pruning_gts

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
