"""Migrations on databases that jobs already use: 0002 (lease epochs) from 0001, 0003 (each job
names its policy) from 0002, and back."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text

from tests.server.conftest import FakeClock, job_spec, local_client
from tests.server.test_api import predict, register, report
from zeus.optimizer.batch_size.schemas import JobSpecFromClient
from zeus.policy import pruning_gts
from zeus.server import ServerSettings, create_app
from zeus.server.db import MIGRATIONS_DIR


def _alembic(database_url: str, revision: str, down: bool = False) -> None:
    engine = create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:  # a refused migration too: no connection left for the garbage collector to close
        engine.dispose()


def _columns(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    names = {c["name"] for c in inspect(engine).get_columns("bso_jobs")}
    engine.dispose()
    return names


def test_upgrade_keeps_existing_jobs_working(database_url: str, clock: FakeClock) -> None:
    _alembic(database_url, "0001")
    assert "longest_epoch_s" not in _columns(database_url)
    spec = JobSpecFromClient.model_validate(job_spec(job_id="test-old"))
    state = pruning_gts.new_state(spec.batch_sizes, spec.default_batch_size, seed=spec.mab_seed)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO bso_jobs (job_id, spec_json, policy_state_json, stage, num_trials,"
                " created_at, updated_at) VALUES ('test-old', :spec, :state, 'pruning', 0, 1, 1)"
            ),
            {"spec": spec.model_dump_json(), "state": state.to_json()},
        )
    engine.dispose()

    app = create_app(ServerSettings(database_url=database_url), clock=clock)  # migrates to head
    with local_client(app) as client:
        _use(client, clock)
    assert "longest_epoch_s" in _columns(database_url)
    _alembic(database_url, "0001", down=True)
    assert "longest_epoch_s" not in _columns(database_url)


def _use(client: TestClient, clock: FakeClock) -> None:
    trial = predict(client, "test-old")
    detail = client.get("/jobs/test-old").json()
    assert detail["trials"][0]["lease_expires_at"] == clock.now + 24 * 3600  # nothing shown yet
    clock.advance(40.0)
    assert report(client, trial, current_epoch=1)["stop_train"] is False
    detail = client.get("/jobs/test-old").json()
    assert detail["trials"][0]["lease_expires_at"] == clock.now + 120.0


def _insert_0002_job(database_url: str, job_id: str) -> pruning_gts.PruningGTSState:
    """A job as the server at revision 0002 stored it: a spec without the fields that came later,
    the paper's state a few trials into pruning; returns that state."""
    spec = JobSpecFromClient.model_validate(job_spec(job_id=job_id))
    old_spec = spec.model_dump_json(exclude={"policy", "explore_tolerance", "prior_cv"})
    state = pruning_gts.new_state(spec.batch_sizes, spec.default_batch_size, seed=spec.mab_seed)
    for cost in (1000.0, 800.0):  # the default, then the next smaller batch size, converged
        batch_size, exploration = pruning_gts.next_batch_size(state)
        pruning_gts.observe(state, batch_size, cost, True, exploration)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO bso_jobs (job_id, spec_json, policy_state_json, stage, num_trials,"
                " min_cost, min_cost_batch_size, created_at, updated_at)"
                " VALUES (:job_id, :spec, :state, 'pruning', 2, :min_cost, :min_bs, 1, 1)"
            ),
            {
                "job_id": job_id,
                "spec": old_spec,
                "state": state.to_json(),
                "min_cost": state.min_cost,
                "min_bs": state.min_cost_bs,
            },
        )
    engine.dispose()
    return state


def test_0003_keeps_existing_jobs_on_the_papers_policy(database_url: str, clock: FakeClock) -> None:
    _alembic(database_url, "0002_lease_epochs")
    assert "policy" not in _columns(database_url)
    state = _insert_0002_job(database_url, "test-paper")
    settings = ServerSettings(database_url=database_url)
    assert settings.default_policy == "local-search-ts"  # new jobs get the other policy
    app = create_app(settings, clock=clock)  # migrates to head
    with local_client(app) as client:
        detail = client.get("/jobs/test-paper").json()
        assert (detail["policy"], detail["spec"]["policy"], detail["stage"]) == (
            "pruning-gts",
            "pruning-gts",
            "pruning",
        )
        # The original client registers the same spec again (no policy field): the same job.
        again = client.post("/jobs", json=job_spec(job_id="test-paper"))
        assert again.status_code == 200 and again.json()["policy"] == "pruning-gts"
        expected, _ = pruning_gts.next_batch_size(state)  # pruning goes on where it was
        assert predict(client, "test-paper")["batch_size"] == expected
        assert register(client, job_id="test-new")["policy"] == "local-search-ts"
        assert client.delete("/jobs", params={"job_id": "test-new"}).status_code == 200
    _alembic(database_url, "0002_lease_epochs", down=True)
    assert "policy" not in _columns(database_url)
    engine = create_engine(database_url)
    with engine.connect() as conn:  # what revision 0002 reads: the paper's state, moved on
        stored = conn.execute(text("SELECT policy_state_json FROM bso_jobs")).scalar_one()
    engine.dispose()
    assert pruning_gts.PruningGTSState.from_json(stored).exploration_in_flight == expected


def test_0003_downgrade_refuses_while_other_policies_jobs_exist(
    database_url: str, clock: FakeClock
) -> None:
    app = create_app(ServerSettings(database_url=database_url), clock=clock)
    with local_client(app) as client:
        job_id = register(client, job_id="test-searching")["job_id"]
        with pytest.raises(RuntimeError, match="jobs 'test-searching' use a policy other than"):
            _alembic(database_url, "0002_lease_epochs", down=True)
        assert "policy" in _columns(database_url)  # nothing changed
        assert client.get(f"/jobs/{job_id}").json()["policy"] == "local-search-ts"
        assert client.delete("/jobs", params={"job_id": job_id}).status_code == 200
    _alembic(database_url, "0002_lease_epochs", down=True)
    assert "policy" not in _columns(database_url)


def test_head_is_the_job_policy_revision() -> None:
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == "0003_job_policy"
