"""`zeus serve --migrate-only` and settings from arguments and ZEUS_BSO_* variables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from zeus.cli import app
from zeus.errors import ZeusConfigError
from zeus.server import ServerSettings


def test_migrate_only_creates_the_schema_and_is_repeatable(database_url: str) -> None:
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app, ["serve", "--migrate-only", "--database-url", database_url])
        assert result.exit_code == 0, result.output
        assert "schema revision 0002_lease_epochs" in result.output
    engine = create_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"bso_jobs", "bso_trials", "bso_alembic_version"} <= tables


def test_replicas_migrating_at_once_all_start(database_url: str) -> None:
    """Several replicas of a Deployment migrate the same fresh database at the same moment."""
    cmd = [sys.executable, "-c", "from zeus.cli import main; main()", "serve", "--migrate-only"]
    procs = [
        subprocess.Popen(
            [*cmd, "--database-url", database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert all("schema revision 0002_lease_epochs" in out for out in outputs)


def test_bad_database_url_is_one_clear_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "from zeus.cli import main; main()", "serve", "--migrate-only"]
    result = subprocess.run(
        [*cmd, "--database-url", "nosuchdb://x"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "database_url" in result.stderr and "Traceback" not in result.stderr


def test_settings_from_environment_overridden_by_arguments() -> None:
    env = {"ZEUS_BSO_LEASE_SECONDS": "60", "ZEUS_BSO_TOKEN": "t", "ZEUS_BSO_PORT": "9000"}
    settings = ServerSettings.from_env(env, port=9100)
    assert settings.lease_seconds == 60.0 and settings.token == "t" and settings.port == 9100
    assert settings.host == "127.0.0.1" and settings.binds_loopback
    assert ServerSettings.from_env({}).database_url == "sqlite:///./zeus_bso.db"
    with pytest.raises(ZeusConfigError, match="lease_seconds"):
        ServerSettings.from_env({"ZEUS_BSO_LEASE_SECONDS": "-1"})
    with pytest.raises(ZeusConfigError, match="max_body_bytes"):
        ServerSettings.from_env({"ZEUS_BSO_MAX_BODY_BYTES": "lots"})


def test_default_database_is_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ZEUS_BSO_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["serve", "--migrate-only"])
    assert result.exit_code == 0, result.output
    engine = create_engine(f"sqlite:///{tmp_path / 'zeus_bso.db'}")
    assert inspect(engine).has_table("bso_jobs")
    engine.dispose()
