"""Engine, transactions and migrations.

Per-job decisions are serialised by the database, never by in-process locks, so several server
processes can share one database: PostgreSQL and MySQL lock the job row (``SELECT ... FOR UPDATE``);
SQLite takes its single write lock up front (``BEGIN IMMEDIATE``) in every write transaction.

No wait on the database is unbounded: a pooled connection, a lock (PostgreSQL ``lock_timeout``,
MySQL ``innodb_lock_wait_timeout``, SQLite's busy timeout) and a PostgreSQL statement each get
``timeout_s``, well below a client's own timeout, after which the request answers 503. A request
that gave up so marks the database *stalled* for a moment, which ``/health`` reports.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)

from zeus.errors import ZeusConfigError
from zeus.server.errors import DomainError
from zeus.server.queries import Queries, Tx

logger = logging.getLogger(__name__)

T = TypeVar("T")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_READ_ONLY = "zeus_read_only"
_NOWAIT = "zeus_nowait"  # SQLite: give up at once when another process holds the write lock
DEFAULT_TIMEOUT_S = 5.0
_SQLITE_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED


class WouldBlock(Exception):
    """SQLite's write lock is held by another process: retry where waiting does not stall the loop."""


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_db_engine(
    database_url: str | URL,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool_size: int = 8,
    max_overflow: int = 10,
) -> Engine:
    """An engine for ``database_url`` (SQLite file, PostgreSQL, MySQL/MariaDB); no database wait
    (pool, lock, statement) lasts longer than about ``timeout_s``."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ZeusConfigError(
            f"database_url {database_url!r} is not a SQLAlchemy URL "
            "(e.g. sqlite:///./zeus_bso.db, postgresql+psycopg://user@host/db)"
        ) from None
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            if url.database in (None, "", ":memory:"):
                raise ZeusConfigError("database_url: SQLite needs a file (sqlite:///path.db)")
            engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": timeout_s},
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=timeout_s,
            )
            _configure_sqlite(engine, busy_ms=math.ceil(timeout_s * 1000))
            return engine
        connect_args: dict[str, Any] = {}
        if backend == "postgresql":
            if url.drivername == "postgresql":  # the driver the server extra installs
                url = url.set(drivername="postgresql+psycopg")
            ms = math.ceil(timeout_s * 1000)
            given = url.query.get("options", "")
            options = f"-c lock_timeout={ms} -c statement_timeout={2 * ms}"
            connect_args["options"] = f"{given} {options}".strip()
        if backend == "mysql":
            if url.drivername == "mysql":
                url = url.set(drivername="mysql+pymysql")
            wait_s = max(1, math.ceil(timeout_s))  # whole seconds only
            connect_args["init_command"] = f"SET SESSION innodb_lock_wait_timeout = {wait_s}"
        return create_engine(
            url,
            connect_args=connect_args,
            pool_pre_ping=True,
            isolation_level="READ COMMITTED",
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=timeout_s,
        )
    except (NoSuchModuleError, ModuleNotFoundError) as e:
        raise ZeusConfigError(
            f"database_url {url.drivername!r}: driver not available ({e})"
        ) from None


def _configure_sqlite(engine: Engine, busy_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite's is deferred)
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
        record.info["busy_ms"] = busy_ms

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        driver: Any = conn.connection.driver_connection  # straight to sqlite3: runs per request
        wait_ms = 0 if options.get(_NOWAIT, False) else busy_ms
        statement = "BEGIN" if options.get(_READ_ONLY, False) else "BEGIN IMMEDIATE"
        try:
            if conn.connection.info.get("busy_ms") != wait_ms:
                driver.execute(f"PRAGMA busy_timeout = {wait_ms}")
                conn.connection.info["busy_ms"] = wait_ms
            driver.execute(statement)
        except sqlite3.Error as e:  # raised outside SQLAlchemy's wrapping: wrap it the same way
            raise DBAPIError.instance(statement, None, e, sqlite3.Error) from e


def _is_busy(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code in _SQLITE_BUSY if code is not None else "locked" in str(error.orig)


class Database:
    """The one place where transactions begin, commit and roll back."""

    def __init__(
        self, engine: Engine, inline: bool | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.engine = engine
        self.queries = Queries(engine.dialect)
        # Run writes on the event loop (see routes.py); default: SQLite only. They run one at a
        # time there, so one connection of their own serves them: never a wait for the pool
        # (the overflow of 1 only keeps SQLAlchemy's checkout on its non-blocking path).
        self.inline = is_sqlite(engine) if inline is None else inline
        self._loop_engine = (
            create_db_engine(engine.url, timeout_s, pool_size=1, max_overflow=1).execution_options(
                **{_NOWAIT: True}
            )
            if self.inline
            else None
        )
        self.timeout_s = timeout_s
        self._stalled_at: float | None = None  # monotonic time a request last gave up waiting

    def note_stall(self) -> None:
        """A request gave up waiting for the database (pool, lock or statement timeout)."""
        self._stalled_at = time.monotonic()

    @property
    def stalled(self) -> bool:
        """Whether a request gave up waiting lately and none has succeeded since."""
        since = self._stalled_at
        return since is not None and time.monotonic() - since < 2 * self.timeout_s

    def dispose(self) -> None:
        self.engine.dispose()
        if self._loop_engine is not None:
            self._loop_engine.dispose()

    @contextmanager
    def _transaction(self, read_only: bool, on_loop: bool = False) -> Iterator[Connection]:
        engine = self._loop_engine if on_loop and self._loop_engine is not None else self.engine
        with engine.connect() as conn:
            if read_only:
                conn = conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():  # commits on success, rolls back on any exception
                yield conn

    def write(self, operation: Callable[[Tx], T], retries: int = 2, on_loop: bool = False) -> T:
        """Run ``operation`` in one write transaction; retried when a concurrent insert won.

        ``on_loop`` (inline databases, called on the event loop): never wait; raise `WouldBlock`
        when SQLite's write lock is held by another process.
        """
        for attempt in range(retries + 1):
            try:
                result = self._write_once(operation, on_loop)
            except IntegrityError:
                if attempt == retries:
                    raise
                logger.debug("integrity conflict, retrying the transaction")
                continue
            except OperationalError as e:
                if on_loop and _is_busy(e):
                    raise WouldBlock from None  # rolled back: nothing happened yet
                raise
            self._stalled_at = None
            return result
        raise AssertionError("unreachable")

    def _write_once(self, operation: Callable[[Tx], T], on_loop: bool) -> T:
        kept: DomainError | None = None
        with self._transaction(read_only=False, on_loop=on_loop) as conn:
            try:
                return operation(Tx(conn, self.queries))
            except DomainError as e:
                if not e.keep_changes:
                    raise
                kept = e  # leave the block normally: the transaction commits, then we raise
        raise kept

    def read(self, operation: Callable[[Connection], T]) -> T:
        with self._transaction(read_only=True) as conn:
            result = operation(conn)
        self._stalled_at = None
        return result


def ping(conn: Connection) -> None:
    conn.exec_driver_sql("SELECT 1").scalar_one()


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest shipped migration; returns the revision now applied."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn, _migration_lock(conn):
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    with engine.connect() as conn:
        from alembic.migration import MigrationContext

        context = MigrationContext.configure(conn, opts={"version_table": "bso_alembic_version"})
        revision = context.get_current_revision() or "none"
    logger.info("database schema at revision %s (%s)", revision, _safe_url(engine))
    return revision


# Replicas that start together (a Kubernetes Deployment) each migrate on start; a database-wide lock
# makes the later ones wait and then find the schema at head instead of racing to create tables.
_MIGRATION_LOCK_KEY = 0x2E05B50


@contextmanager
def _migration_lock(conn: Connection) -> Iterator[None]:
    dialect = conn.dialect.name
    if dialect == "postgresql":  # released when the migration transaction ends
        # A migration waits for the others and may rewrite big tables: no request timeouts here.
        conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        yield
    elif dialect in ("mysql", "mariadb"):  # session lock: pooled connections outlive us, release it
        conn.exec_driver_sql("SELECT GET_LOCK('zeus_bso_migrate', 600)")
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT RELEASE_LOCK('zeus_bso_migrate')")
    else:  # SQLite: one file, and `zeus serve --workers N` migrates once before forking
        yield


def has_schema(engine: Engine) -> bool:
    return inspect(engine).has_table("bso_jobs")


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
