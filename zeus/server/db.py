"""Engine, transactions and migrations.

Per-job decisions are serialised by the database, never by in-process locks, so several server
processes can share one database: PostgreSQL and MySQL lock the job row (``SELECT ... FOR UPDATE``);
SQLite takes its single write lock up front (``BEGIN IMMEDIATE``) in every write transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError

from zeus.errors import ZeusConfigError
from zeus.server.errors import DomainError
from zeus.server.queries import Queries, Tx

logger = logging.getLogger(__name__)

T = TypeVar("T")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_READ_ONLY = "zeus_read_only"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_db_engine(database_url: str) -> Engine:
    """An engine for ``database_url`` (SQLite file, PostgreSQL, MySQL/MariaDB)."""
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
                url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8
            )
            _configure_sqlite(engine)
            return engine
        if backend == "postgresql" and url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")  # the driver the server extra installs
        if backend == "mysql" and url.drivername == "mysql":
            url = url.set(drivername="mysql+pymysql")
        return create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED", pool_size=8)
    except (NoSuchModuleError, ModuleNotFoundError) as e:
        raise ZeusConfigError(
            f"database_url {url.drivername!r}: driver not available ({e})"
        ) from None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite's is deferred)
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        driver = conn.connection.driver_connection  # straight to sqlite3: this runs per request
        driver.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")  # type: ignore[union-attr]


class Database:
    """The one place where transactions begin, commit and roll back."""

    def __init__(self, engine: Engine, inline: bool | None = None) -> None:
        self.engine = engine
        self.queries = Queries(engine.dialect)
        # Run queries on the event loop (see routes.py); default: SQLite only.
        self.inline = is_sqlite(engine) if inline is None else inline

    @contextmanager
    def _transaction(self, read_only: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if read_only:
                conn = conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():  # commits on success, rolls back on any exception
                yield conn

    def write(self, operation: Callable[[Tx], T], retries: int = 2) -> T:
        """Run ``operation`` in one write transaction; retried when a concurrent insert won."""
        for attempt in range(retries + 1):
            try:
                return self._write_once(operation)
            except IntegrityError:
                if attempt == retries:
                    raise
                logger.debug("integrity conflict, retrying the transaction")
        raise AssertionError("unreachable")

    def _write_once(self, operation: Callable[[Tx], T]) -> T:
        kept: DomainError | None = None
        with self._transaction(read_only=False) as conn:
            try:
                return operation(Tx(conn, self.queries))
            except DomainError as e:
                if not e.keep_changes:
                    raise
                kept = e  # leave the block normally: the transaction commits, then we raise
        raise kept

    def read(self, operation: Callable[[Connection], T]) -> T:
        with self._transaction(read_only=True) as conn:
            return operation(conn)


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
