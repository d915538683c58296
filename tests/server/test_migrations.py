"""Migration 0002 (lease epochs) on a database that jobs already use at revision 0001."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text

from tests.server.conftest import FakeClock, job_spec, local_client
from tests.server.test_api import predict, report
from zeus.optimizer.batch_size.schemas import JobSpecFromClient
from zeus.policy import pruning_gts
from zeus.server import ServerSettings, create_app
from zeus.server.db import MIGRATIONS_DIR


def _alembic(database_url: str, revision: str, down: bool = False) -> None:
    engine = create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
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


def test_head_is_the_lease_epochs_revision() -> None:
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == "0002_lease_epochs"
