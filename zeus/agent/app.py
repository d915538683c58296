"""`create_app(settings)`: the node agent as a FastAPI app.

State lives on ``app.state``: ``book`` (the leases, with the devices, journal, audit log and
allow-list), ``instance`` (this process's id, which clients use to notice a restart), ``backend``,
and with metrics on, ``meter`` and ``metrics`` (its Prometheus registry). Background work runs as
lifespan tasks on the event loop (the holder watcher, the metrics sampler), so every device call
stays on one thread.

One ASGI guard in front (bearer token for remote callers, the metrics listener's one path, body
size limit, a bare 500 for anything unexpected) and one exception handler per error family.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zeus.agent.access import Access
from zeus.agent.audit import AuditLog
from zeus.agent.devices import Devices
from zeus.agent.errors import AgentError
from zeus.agent.journal import Journal
from zeus.agent.leases import LeaseBook
from zeus.agent.meter import Meter
from zeus.agent.routes import PEER_KEY, router
from zeus.agent.settings import AgentSettings
from zeus.device.base import GPU

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})


class Guard:
    """Pure ASGI middleware: remote callers need the bearer token; bodies are bounded; an
    unexpected error is logged and answered with a bare 500 (never a traceback)."""

    def __init__(self, app: ASGIApp, *, settings: AgentSettings) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.expected = f"Bearer {settings.token}".encode() if settings.token else None
        self.metrics_port = settings.metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = [False]

        async def send_tracking(message: Message) -> None:
            started[0] = started[0] or message["type"] == "http.response.start"
            await send(message)

        refusal = self._refusal(scope)
        try:
            if refusal is not None:
                await _send_json(send_tracking, *refusal)
            else:
                await self.app(scope, self._limited(receive), send_tracking)
        except Exception:
            logger.exception("internal error on %s %s", scope["method"], scope["path"])
            if started[0]:
                raise
            await _send_json(send_tracking, 500, "internal error", "internal", {})

    def _refusal(self, scope: Scope) -> tuple[int, str, str, dict[str, str]] | None:
        headers = dict(scope["headers"])
        local = scope.get("extensions", {}).get(PEER_KEY) is not None
        port = (scope.get("server") or (None, None))[1]
        if not local and port is not None and port == self.metrics_port:
            if scope["path"] == "/metrics" and scope["method"] == "GET":
                return None  # the metrics listener: read-only, no token
            return 404, "the metrics listener serves GET /metrics only", "not_found", {}
        needs_token = self.expected is not None and not local and scope["path"] not in OPEN_PATHS
        given = headers.get(b"authorization", b"")
        if needs_token and not hmac.compare_digest(given, self.expected or b""):
            return (
                401,
                "missing or wrong bearer token",
                "unauthorized",
                {"www-authenticate": "Bearer"},
            )
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return 413, f"request body larger than {self.limit} bytes", "too_large", {}
        return None

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise StarletteHTTPException(413, f"request body larger than {self.limit} bytes")
            return message

        return receive_limited


async def _send_json(
    send: Send, status: int, message: str, code: str, headers: dict[str, str]
) -> None:
    body = json.dumps({"message": message, "error": code}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(AgentError)
    async def _refused(_: Request, exc: AgentError) -> JSONResponse:
        return JSONResponse({"message": exc.message, "error": exc.code}, exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return JSONResponse(
            {"message": str(exc.detail), "error": code.get(exc.status_code, "invalid")},
            exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"message": _one_line(exc.errors()), "error": "invalid"}, 422)


def _one_line(errors: Sequence[Any]) -> str:
    """The first validation error as ``field: what is wrong`` (FastAPI's list, made readable)."""
    first = errors[0] if errors else {}
    field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{field}: {first.get('msg', 'invalid')}{more}"


async def _watch_holders(leases: LeaseBook, poll_s: float) -> None:
    """End the leases of processes that are gone, ``poll_s`` after they went at the latest."""
    while True:
        try:
            leases.reap()
        except Exception:  # never let the watcher die: restores depend on it
            logger.exception("holder watcher failed; retrying")
        await asyncio.sleep(poll_s)


def _last_sample(meter: Meter) -> None:
    """At shutdown: the totals up to now go to disk (the next agent starts from them)."""
    from zeus.agent.metrics import sample_and_save

    try:
        sample_and_save(meter)
    except Exception:
        logger.exception("metrics: could not save the last sample")


def create_app(
    settings: AgentSettings | None = None, *, gpus: Sequence[GPU] | None = None
) -> FastAPI:
    """The agent app: opens the devices of ``settings.gpu`` (or takes ``gpus``), takes back the
    journal's leases and restores those whose holder is gone. ``settings`` None: ``ZEUS_AGENT_*``."""
    settings = settings or AgentSettings.from_env()
    if gpus is None:
        from zeus.device import get_gpus

        gpus = get_gpus(backend=settings.gpu)
    access = Access(frozenset(settings.allow_uids), settings.allowed_gids)
    audit = AuditLog(settings.audit_path)
    devices = Devices(gpus)
    meter = Meter(devices, settings.energy_path) if settings.metrics_port is not None else None
    book = LeaseBook(devices, Journal(settings.journal_path), audit, access, meter)
    book.recover()
    if meter is not None:
        from zeus.agent.metrics import sample_and_save

        sample_and_save(meter)  # the first scrape has figures

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_watch_holders(book, settings.holder_poll_s))]
        if meter is not None:
            from zeus.agent.metrics import sample_forever

            tasks.append(asyncio.create_task(sample_forever(meter, settings.metrics_interval_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if meter is not None:
                _last_sample(meter)
            audit.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Zeus node agent",
        version="1",
        description="The one process on a node that changes GPU power limits, for leaseholders.",
    )
    app.state.settings = settings
    app.state.book = book
    app.state.instance = secrets.token_hex(8)
    app.state.backend = settings.gpu
    app.state.meter = meter
    app.state.metrics = None
    if meter is not None:
        from zeus.agent.metrics import make_registry

        app.state.metrics = make_registry(meter)
    app.include_router(router)
    _install_handlers(app)
    app.add_middleware(Guard, settings=settings)
    return app
