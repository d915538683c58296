"""The ASGI guard in front of every route: who may ask, and how much.

In order: the Host header must name this server (a web page cannot reach a local server through
DNS rebinding); browsers' cross-origin requests are refused (no page can drive the API, not even
with a "simple" request that needs no preflight); the bearer token when one is configured (the
scheme is case-insensitive); ``/admin/`` paths need the token, or a loopback peer when the server
has none; bodies stay under ``max_body_bytes``. ``/health`` passes every check, so probes that
address a pod by IP work. Request metrics are taken here too, and the last-resort 500.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import time

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zeus.server.metrics import ServerMetrics
from zeus.server.settings import LOOPBACK_HOSTS, ServerSettings

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
ADMIN_PREFIX = "/admin/"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# Browsers mark requests from other sites with these (no such header: not a browser, or typed in).
_FOREIGN_SITES = frozenset({b"cross-site", b"same-site"})

Refusal = tuple[int, str, dict[str, str]]


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


def _name_port(netloc: str) -> tuple[str, str | None]:
    """``name[:port]`` (IPv6 in brackets) to (lower-case name, port or None)."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        name, _, rest = netloc[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    if netloc.count(":") == 1:
        name, _, port = netloc.partition(":")
        return name, port
    return netloc, None


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port."""
    return _name_port(host)[0]


def _same_origin(origin: bytes, host: bytes) -> bool:
    """Whether a browser's ``Origin`` names the server the request's ``Host`` names."""
    scheme, _, netloc = origin.decode("latin-1").partition("://")
    name, port = _name_port(netloc)
    host_name_, host_port = _name_port(host.decode("latin-1"))
    default = _DEFAULT_PORTS.get(scheme.lower())
    return bool(name) and (name, port or default) == (host_name_, host_port or default)


class Guard:
    """Pure ASGI middleware: host, origin, token and size checks; request metrics."""

    def __init__(self, app: ASGIApp, *, settings: ServerSettings, metrics: ServerMetrics) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.token = settings.token.encode() if settings.token else None
        self.hosts = settings.served_hosts()
        self.metrics = metrics
        # The same few Host values come again and again: decide each once.
        self._host_refusal = functools.lru_cache(maxsize=256)(self._check_host)

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
                await send_json(send_tracking, *refusal)
            else:
                await self.app(scope, self._limited(receive), send_tracking)
        except Exception:
            # Last resort: log the details, answer a bare 500 (never SQL or a traceback).
            logger.exception("internal error on %s %s", scope["method"], scope["path"][:200])
            if status[0]:  # the response has started: nothing more can be sent
                raise
            await send_json(send_tracking, 500, "internal server error", {})
        endpoint = scope.get("endpoint")
        name = getattr(endpoint, "__name__", "unmatched")
        self.metrics.observe(name, status[0] or 500, time.perf_counter() - start)

    def _refusal(self, scope: Scope) -> Refusal | None:
        if scope["path"] in OPEN_PATHS:
            return None
        headers = dict(scope["headers"])
        return (
            self._foreign(headers)
            or self._unauthorized(scope, headers)
            or self._too_large(headers.get(b"content-length"))
        )

    def _check_host(self, host: bytes) -> Refusal | None:
        if self.hosts is None:
            return None
        name = host_name(host.decode("latin-1"))
        if name in self.hosts:
            return None
        shown = name[:100].encode("ascii", "backslashreplace").decode()
        why = "server setting allowed_hosts, env ZEUS_BSO_ALLOWED_HOSTS"  # names: start-up output
        return 400, f"Host {shown!r} is not served here ({why})", {}

    def _foreign(self, headers: dict[bytes, bytes]) -> Refusal | None:
        host = headers.get(b"host")
        if host is not None and (refusal := self._host_refusal(host)) is not None:
            return refusal
        origin = headers.get(b"origin")
        cross_origin = origin is not None and not _same_origin(origin, host or b"")
        if cross_origin or headers.get(b"sec-fetch-site") in _FOREIGN_SITES:
            return 403, "cross-origin requests are refused", {}
        return None

    def _unauthorized(self, scope: Scope, headers: dict[bytes, bytes]) -> Refusal | None:
        if self.token is None:
            client = scope.get("client")
            peer = client[0] if client else ""
            if scope["path"].startswith(ADMIN_PREFIX) and peer not in LOOPBACK_HOSTS:
                return 403, "admin endpoints need a token, or a client on this host", {}
            return None
        scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(), self.token):
            return 401, "missing or wrong bearer token", {"www-authenticate": "Bearer"}
        return None

    def _too_large(self, length: bytes | None) -> Refusal | None:
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


async def send_json(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps({"message": message}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
