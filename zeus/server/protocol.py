"""uvicorn's httptools protocol with the two limits it lacks: header size and header time.

uvicorn (httptools) buffers a request's head without bound and waits for it forever: a 100 MiB
header is read into memory and a client that sends one byte a second holds its connection
indefinitely. Here a request's line and headers must fit in ``max_header_bytes`` (else 431) and
arrive within ``header_timeout_s`` of their first byte, or of the connection's opening (else 408,
or a plain close when nothing came). Idle keep-alive connections stay uvicorn's business
(``timeout_keep_alive``). `protocol_factory` gives what ``uvicorn.run(http=...)`` takes; it
pickles, so ``--workers N`` get it too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:  # workers unpickle this module before they answer health checks: stay light
    from zeus.server.settings import ServerSettings

logger = logging.getLogger(__name__)

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def protocol_factory(settings: ServerSettings) -> Any:
    """What ``uvicorn.run(http=...)`` takes: httptools (``uvicorn[standard]``) with the limits."""
    return functools.partial(
        LimitedHttpToolsProtocol,
        max_header_bytes=settings.max_header_bytes,
        header_timeout_s=settings.header_timeout_seconds,
    )


class LimitedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
    def __init__(self, *args: Any, max_header_bytes: int, header_timeout_s: float, **kw: Any):
        super().__init__(*args, **kw)
        self.max_header_bytes = max_header_bytes
        self.header_timeout_s = header_timeout_s
        self._reading_head = True  # bytes now received belong to a request's line or headers
        self._head_bytes = 0  # received while reading the head: stops one that never ends
        self._head_size = 0  # parsed target and headers: measures one that came in one piece
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._arm_head_timer()
        super().data_received(data)  # headers completed in this chunk end the head phase
        if self._reading_head and self._head_bytes > self.max_header_bytes:
            self._refuse(431, f"request head over {self.max_header_bytes} bytes")

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size, self._head_size = self._head_size, 0
        self._reading_head, self._head_bytes = False, 0
        self._cancel_head_timer()
        if size > self.max_header_bytes:  # stop the parser; see send_400_response
            self._refusal = (431, f"request head over {self.max_header_bytes} bytes")
            raise ValueError(self._refusal[1])
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error: ours when the error was our refusal."""
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True  # what comes next starts the next request

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport.is_closing():
            return
        if self._head_bytes == 0 and self.cycle is None:
            self.transport.close()  # connected and said nothing
            return
        self._refuse(408, f"request head not received within {self.header_timeout_s:g} s")

    def _refuse(self, status: int, message: str) -> None:
        if self.transport.is_closing():
            return
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        logger.info("closing the connection from %s: %s", peer, message)
        if self.cycle is None or self.cycle.response_complete:  # else a response is underway
            body = json.dumps({"message": message}).encode()
            head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            head += b"content-type: application/json\r\nconnection: close\r\n"
            head += b"content-length: %d\r\n\r\n" % len(body)
            self.transport.write(head + body)
        self.transport.close()
