"""A stalled database (another session holds a lock): a real `zeus serve` answers 503 with
Retry-After before the client's timeout, /health answers first and says so, and all recovers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.server.conftest import LiveServer, job_spec

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT_S = 30.0  # the project's client gives up after this
REQUESTS = 24  # more than the server's database pool (8 + 10 overflow)


@contextmanager
def _postgres_table_lock(url: str) -> Iterator[None]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin() as tx:
            conn.execute(text("LOCK TABLE bso_jobs IN ACCESS EXCLUSIVE MODE"))
            yield
            tx.rollback()
    finally:
        engine.dispose()


@contextmanager
def _sqlite_write_lock(path: Path) -> Iterator[None]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")  # SQLite's one write lock, held by another process
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    response = call()
    return response, time.monotonic()


def _stall_then_recover(server: LiveServer, lock: Callable[[], object]) -> None:
    assert httpx.post(server.url + "/jobs", json=job_spec(job_id="test-stall")).status_code == 201
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:

        def predict() -> httpx.Response:
            return client.get("/jobs/batch_size", params={"job_id": "test-stall"})

        with lock(), ThreadPoolExecutor(REQUESTS + 2) as pool:  # type: ignore[attr-defined]
            stuck = [pool.submit(_timed, predict) for _ in range(REQUESTS)]
            time.sleep(1.0)  # let them reach the database
            health = pool.submit(_timed, lambda: client.get("/health"))
            answers = [f.result() for f in stuck]  # raises if the client timed out
            health_response, health_done = health.result()
        for response, _ in answers:
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
            assert response.json() == {"message": response.json()["message"]}
            assert "retry later" in response.json()["message"]
        assert health_response.status_code == 503
        assert health_response.json() == {"status": "degraded", "database": "stalled"}
        assert health_done < min(done for _, done in answers)  # health did not queue behind them
    # The lock is gone: everything works again, and /health says so. New connections: the server
    # may be closing the pool's idle keep-alive ones just as they are reused (a reset, not a stall).
    params = {"job_id": "test-stall"}
    assert httpx.get(server.url + "/jobs/batch_size", params=params).status_code == 200
    assert httpx.get(server.url + "/health").json() == {"status": "ok", "database": "ok"}


def test_postgres_table_lock(postgres_url: str, servers: Callable[..., LiveServer]) -> None:
    server = servers(postgres_url)
    _stall_then_recover(server, lambda: _postgres_table_lock(postgres_url))


def test_sqlite_write_lock(tmp_path: Path, servers: Callable[..., LiveServer]) -> None:
    path = tmp_path / "bso.db"
    server = servers(f"sqlite:///{path}")
    _stall_then_recover(server, lambda: _sqlite_write_lock(path))


def test_sqlite_reads_go_on_while_writes_wait(
    tmp_path: Path, servers: Callable[..., LiveServer]
) -> None:
    """A write waiting for another process's lock waits off the event loop: reads still answer."""
    path = tmp_path / "bso.db"
    server = servers(f"sqlite:///{path}")
    assert httpx.post(server.url + "/jobs", json=job_spec(job_id="test-wait")).status_code == 201
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
        with _sqlite_write_lock(path), ThreadPoolExecutor(2) as pool:
            write = pool.submit(
                _timed, lambda: client.get("/jobs/batch_size", params={"job_id": "test-wait"})
            )
            time.sleep(0.5)
            read, read_done = _timed(lambda: client.get("/jobs/test-wait"))
            written, write_done = write.result()
        assert read.status_code == 200 and read_done < write_done
        assert written.status_code == 503
