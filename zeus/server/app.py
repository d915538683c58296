"""`create_app(settings)`: the BSO server as a FastAPI app.

One ASGI guard in front (auth, body size limit, request metrics), one exception handler per error
family: domain errors carry their status code; database outages answer 503; anything else is a
500 whose body never carries SQL, parameters or a traceback (those go to the server log).
"""

from __future__ import annotations

import gc
import hmac
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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zeus.server.db import Database, create_db_engine, migrate
from zeus.server.errors import DomainError
from zeus.server.metrics import ServerMetrics
from zeus.server.routes import router
from zeus.server.settings import ServerSettings

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class Guard:
    """Pure ASGI middleware: bearer-token check, body size limit, request metrics."""

    def __init__(self, app: ASGIApp, *, settings: ServerSettings, metrics: ServerMetrics) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.expected = f"Bearer {settings.token}".encode() if settings.token else None
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]  # 0 until the response starts

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        refusal = self._refusal(scope)
        try:
            if refusal is not None:
                await _send_json(send_tracking, *refusal)
            else:
                await self.app(scope, self._limited(receive), send_tracking)
        except Exception:
            # Last resort: log the details, answer a bare 500 (never SQL or a traceback).
            logger.exception("internal error on %s %s", scope["method"], scope["path"])
            if status[0]:  # the response has started: nothing more can be sent
                raise
            await _send_json(send_tracking, 500, "internal server error", {})
        endpoint = scope.get("endpoint")
        name = getattr(endpoint, "__name__", "unmatched")
        self.metrics.observe(name, status[0] or 500, time.perf_counter() - start)

    def _refusal(self, scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        headers = dict(scope["headers"])
        if self.expected is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return 401, "missing or wrong bearer token", {"www-authenticate": "Bearer"}
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return 413, f"request body larger than {self.limit} bytes", {}
        return None

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        return receive_limited


async def _send_json(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps({"message": message}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"message": exc.message}, status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _plain_errors(exc.errors())}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        logger.error("database error on %s %s: %s", request.method, request.url.path, exc.orig)
        return JSONResponse({"message": "database unavailable; retry later"}, status_code=503)

    @app.exception_handler(DBAPIError)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"message": "internal server error"}, status_code=500)


def _plain_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation details as plain JSON: exceptions in ``ctx`` and NaN/inf become text."""
    plain = []
    for error in errors:
        item = {k: v for k, v in error.items() if k not in ("ctx", "url")}
        if "ctx" in error:
            item["ctx"] = {k: str(v) for k, v in error["ctx"].items()}
        plain.append(_json_safe(item))
    return plain


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def create_app(
    settings: ServerSettings | None = None, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The BSO server app. ``settings`` None: read ``ZEUS_BSO_*`` from the environment now."""
    settings = settings or ServerSettings.from_env()
    engine = create_db_engine(settings.database_url)
    if settings.migrate:
        migrate(engine)
    db = Database(engine, inline=settings.inline_database)
    metrics = ServerMetrics(db)
    if settings.token is None:
        log = logger.info if settings.binds_loopback else logger.warning
        log("no token configured: every client that reaches %s can change jobs", settings.host)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

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
    app.include_router(router)
    _install_handlers(app)
    app.add_middleware(Guard, settings=settings, metrics=metrics)

    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and ``zeus serve --workers N`` (each worker calls it)."""
    app = create_app(ServerSettings.from_env())
    # Everything loaded so far lives as long as the server process: keep it out of the garbage
    # collector's full passes, which otherwise stall requests now and then (latency tails).
    gc.freeze()
    return app
