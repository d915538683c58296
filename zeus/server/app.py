"""`create_app(settings)`: the BSO server as a FastAPI app.

One ASGI guard in front (`guard.py`: host, origin, token, body size, request metrics), one exception
handler per error family: domain errors carry their status code; validation errors echo a bounded,
always-encodable excerpt of the input; a database that is down or keeps a request waiting past its
timeout answers 503 with ``Retry-After``; anything else is a 500 whose body never carries SQL,
parameters or a traceback (those go to the server log).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from zeus.server.db import Database, create_db_engine, migrate
from zeus.server.errors import DomainError
from zeus.server.guard import Guard
from zeus.server.leases import LeasePolicy
from zeus.server.metrics import ServerMetrics
from zeus.server.routes import router
from zeus.server.settings import ServerSettings

logger = logging.getLogger(__name__)

# 422 bodies echo at most this much of the input: a few errors, each input cut short.
MAX_ECHOED_ERRORS = 10
MAX_ECHOED_CHARS = 200


def _install_handlers(app: FastAPI, db: Database) -> None:
    retry_after = {"retry-after": str(max(1, math.ceil(db.timeout_s)))}

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        body: dict[str, Any] = {"message": exc.message}
        if exc.field is not None:  # the shape of a validation error too, so any client reads it
            body["detail"] = [
                {"type": "value_error", "loc": ["body", exc.field], "msg": exc.message}
            ]
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": plain_errors(exc.errors())}, status_code=422)

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        db.note_stall()
        logger.error("no database connection within %g s on %s", db.timeout_s, request.url.path)
        return JSONResponse(
            {"message": "database busy; retry later"}, status_code=503, headers=retry_after
        )

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        db.note_stall()
        reason = str(exc.orig).strip().split("\n", 1)[0][:200]
        logger.error("database error on %s %s: %s", request.method, request.url.path, reason)
        return JSONResponse(
            {"message": "database unavailable; retry later"}, status_code=503, headers=retry_after
        )

    @app.exception_handler(DBAPIError)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"message": "internal server error"}, status_code=500)


def plain_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation details as plain, encodable, bounded JSON.

    Exceptions in ``ctx`` become text, NaN/inf become text, strings that UTF-8 cannot encode (lone
    surrogates from ``\\ud800`` escapes) are escaped, and the echoed input is cut short: a 100k-element
    list does not come back whole, nor one error per element.
    """
    errors = list(errors)
    plain = []
    for error in errors[:MAX_ECHOED_ERRORS]:
        item = {k: v for k, v in error.items() if k not in ("ctx", "url", "input")}
        item["msg"] = _cut(str(error.get("msg", "")), 4 * MAX_ECHOED_CHARS)
        if "ctx" in error:
            item["ctx"] = {k: str(v) for k, v in error["ctx"].items()}
        if "input" in error:
            item["input"] = _excerpt(error["input"])
        plain.append(_json_safe(item))
    if len(errors) > MAX_ECHOED_ERRORS:
        more = len(errors) - MAX_ECHOED_ERRORS
        plain.append({"type": "too_many_errors", "loc": [], "msg": f"and {more} more errors"})
    return plain


def _excerpt(value: Any) -> Any:
    """The input itself when short, else the start of its JSON text."""
    safe = _json_safe(value)
    text = json.dumps(safe, ensure_ascii=False)
    return safe if len(text) <= MAX_ECHOED_CHARS else _cut(text, MAX_ECHOED_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {_text(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    return _text(str(value))


def _text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def create_app(
    settings: ServerSettings | None = None, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The BSO server app. ``settings`` None: read ``ZEUS_BSO_*`` from the environment now."""
    settings = settings or ServerSettings.from_env()
    engine = create_db_engine(settings.database_url, settings.database_timeout_seconds)
    if settings.migrate:
        migrate(engine)
    db = Database(engine, settings.inline_database, settings.database_timeout_seconds)
    metrics = ServerMetrics(db)
    if settings.token is None:
        log = logger.info if settings.binds_loopback else logger.warning
        log("no token configured: every client that reaches %s can change jobs", settings.host)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        db.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="Zeus batch size optimizer",
        version="1",
        description="Hands out batch sizes to recurring training jobs and learns from their cost.",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.metrics = metrics
    app.state.clock = clock
    app.state.leases = LeasePolicy.from_settings(settings)
    app.include_router(router)
    _install_handlers(app, db)
    app.add_middleware(Guard, settings=settings, metrics=metrics)

    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and ``zeus serve --workers N`` (each worker calls it)."""
    app = create_app(ServerSettings.from_env())
    # Everything loaded so far lives as long as the server process: keep it out of the garbage
    # collector's full passes, which otherwise stall requests now and then (latency tails).
    gc.freeze()
    return app
