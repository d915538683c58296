"""Fixtures of the BSO server tests: real SQLite files, a throwaway PostgreSQL cluster, live servers.

The PostgreSQL cluster is started once per session with the system's binaries (initdb + pg_ctl from
/usr/lib/postgresql/*/bin, run as the ``postgres`` user when the tests run as root) on a free loopback
port, with one fresh database per test; ``ZEUS_TEST_POSTGRES_URL`` points the tests at an existing
server instead. MariaDB likewise (mariadb-install-db + mariadbd). Without the binaries their tests
skip with the reason; ``scripts/install-services.sh`` (run by ``make test``) installs them.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from zeus.server import ServerSettings, create_app

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def job_spec(**overrides: Any) -> dict[str, Any]:
    """A valid registration body; tests override what they exercise."""
    spec: dict[str, Any] = {
        "job_id": None,
        "job_id_prefix": "test",
        "batch_sizes": [32, 64, 128, 256],
        "default_batch_size": 64,
        "eta_knob": 0.5,
        "beta_knob": 2.0,
        "target_metric": 0.5,
        "higher_is_better_metric": True,
        "max_epochs": 10,
        "num_pruning_rounds": 2,
        "window_size": 0,
        "mab_prior_mean": 0.0,
        "mab_prior_precision": 0.0,
        "mab_num_explorations": 2,
        "mab_seed": 7,
        "max_power": 300.0,
        "number_of_gpus": 1,
        "gpu_model": "NVIDIA A40",
    }
    spec.update(overrides)
    return spec


@dataclass
class FakeClock:
    """Time the server reads; tests move it to expire leases without sleeping."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ------------------------------------------------------------------------------------ PostgreSQL


@dataclass
class PostgresCluster:
    """A PostgreSQL server where each test gets a database of its own."""

    base_url: str  # postgresql+psycopg://user[:password]@host:port/admin_database

    def url(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.base_url).set(database=database).render_as_string(hide_password=False)

    def admin(self, sql: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.base_url)
        with psycopg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.database,
            autocommit=True,
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def new_database(self) -> str:
        name = "zeus_" + uuid.uuid4().hex[:12]
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    external = os.environ.get("ZEUS_TEST_POSTGRES_URL")
    if external:  # a server someone else runs: its user must be allowed to create databases
        yield PostgresCluster(external)
        return
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin "
            "(run scripts/install-services.sh)"
        )
    root = Path(tempfile.mkdtemp(prefix="zeus-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        shutil.chown(root, user="postgres", group="postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        **run,  # type: ignore[call-overload]
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    )
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")]
    subprocess.run([*pg_ctl, "-o", options, "-w", "start"], **run)  # type: ignore[call-overload]
    try:
        yield PostgresCluster(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------- MariaDB


@dataclass
class MariaDBServer:
    port: int

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def new_database(self) -> str:
        import pymysql

        name = "zeus_" + uuid.uuid4().hex[:12]
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        finally:
            conn.close()
        return self.url(name)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A throwaway MariaDB (mariadb-install-db + mariadbd) in a temp dir on a free loopback port."""
    server_bin, install = (
        shutil.which("mariadbd", path="/usr/sbin:/usr/bin"),
        shutil.which("mariadb-install-db"),
    )
    if server_bin is None or install is None:
        pytest.skip("MariaDB binaries (mariadbd, mariadb-install-db) not found")
    root = Path(tempfile.mkdtemp(prefix="zeus-mariadb-"))
    user = ["--user=mysql"] if os.geteuid() == 0 else []
    if user:
        shutil.chown(root, user="mysql", group="mysql")
    data, port = root / "data", free_port()
    subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", *user, "--skip-test-db"],
        check=True,
        capture_output=True,
        timeout=180,
    )
    args = [
        server_bin,
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={root / 'sock'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--skip-grant-tables",  # throwaway: no accounts to set up
        "--innodb-flush-log-at-trx-commit=2",
        "--innodb-buffer-pool-size=64M",
        *user,
    ]
    with (root / "log").open("ab") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mariadbd did not start:\n{(root / 'log').read_text()}")
                time.sleep(0.2)
        yield MariaDBServer(port)
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mysql: needs MariaDB/MySQL binaries (started per session)")


BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bso.db'}"
    if request.param == "mysql":
        mariadb: MariaDBServer = request.getfixturevalue("mariadb_server")
        return mariadb.new_database()
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    return postgres_cluster.new_database()


# ------------------------------------------------------------------------------------- apps


# The server serves the Host names of its bound address and localhost (TestClient's default is
# "testserver", which it refuses).
LOCAL_BASE_URL = "http://127.0.0.1:8000"


def local_client(app: Any) -> TestClient:
    """A TestClient addressing the app as a local client would."""
    return TestClient(app, raise_server_exceptions=False, base_url=LOCAL_BASE_URL)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(database_url: str, clock: FakeClock) -> Iterator[Callable[..., TestClient]]:
    """Build a TestClient over ``create_app`` on the test's database, with settings overridden."""
    clients: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        app = create_app(ServerSettings(database_url=database_url, **settings), clock=clock)
        client = local_client(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


# ------------------------------------------------------------------------------ live servers


@dataclass
class LiveServer:
    """A real `zeus serve` process on a loopback port."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(
    database_url: str, log: Path, *extra: str, env: dict[str, str] | None = None
) -> LiveServer:
    """Start `zeus serve` and wait until /health answers."""
    port = free_port()
    zeus = [sys.executable, "-c", "from zeus.cli import main; main()"]
    cmd = [*zeus, "serve", "--port", str(port), "--database-url", database_url, *extra]
    process_env = {**os.environ, **(env or {})}
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=process_env)
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"zeus serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"zeus serve did not become healthy:\n{log.read_text()}")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start live servers; every one is stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(database_url: str, *extra: str, env: dict[str, str] | None = None) -> LiveServer:
        server = start_server(database_url, tmp_path / f"server{len(started)}.log", *extra, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
