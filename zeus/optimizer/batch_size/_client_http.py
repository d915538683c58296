"""The BSO client's HTTP layer: one reusable connection, bounded retries with exponential backoff.

Transient failures (connection errors, timeouts, 502/503/504) are retried, no sooner than the
server's ``Retry-After`` asks; every other error status is surfaced at once as `ZeusServerError`
carrying the server's own message.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from zeus.errors import ZeusConfigError, ZeusServerError, check_range

logger = logging.getLogger(__name__)

_TRANSIENT_STATUS = frozenset({502, 503, 504})
_MAX_BACKOFF_S = 10.0


class BSOHttp:
    """A thin JSON client for one BSO server."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ZeusConfigError(
                f"server_url must start with http:// or https://, got {base_url!r}"
            )
        check_range("timeout_s", timeout_s, gt=0)
        check_range("max_retries", max_retries, ge=0)
        check_range("backoff_s", backoff_s, ge=0)
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout_s = timeout_s
        self._client = self._new_client()

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self._headers, timeout=self._timeout_s)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> Any:
        """Send one request, retrying transient failures; return the decoded JSON body."""
        retries = self.max_retries if max_retries is None else max_retries
        for attempt in range(retries + 1):
            last_try = attempt == retries
            if self._client.is_closed:  # closed by close(); a failure handler still needs it
                self._client = self._new_client()
            try:
                response = self._client.request(method, path, json=json, params=params)
            except httpx.TransportError as e:
                if last_try:
                    raise ZeusServerError(
                        f"BSO server at {self.base_url} unreachable ({method} {path}) after "
                        f"{attempt + 1} attempts: {e!r}"
                    ) from e
                self._wait(attempt, f"{method} {path}: {e!r}")
                continue
            if response.status_code in _TRANSIENT_STATUS and not last_try:
                why = f"{method} {path}: HTTP {response.status_code}"
                self._wait(attempt, why, _retry_after_s(response))
                continue
            return _decode(response, method, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._client.close()

    def _wait(self, attempt: int, why: str, at_least_s: float = 0.0) -> None:
        delay_s = min(max(self.backoff_s * 2**attempt, at_least_s), _MAX_BACKOFF_S)
        logger.warning("BSO server: %s; retrying in %.1f s", why, delay_s)
        time.sleep(delay_s)


def _retry_after_s(response: httpx.Response) -> float:
    """The ``Retry-After`` delay in seconds (0 when absent or an HTTP date)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", 0)))
    except ValueError:
        return 0.0


def _decode(response: httpx.Response, method: str, path: str) -> Any:
    if response.is_success:
        return response.json() if response.content else None
    raise ZeusServerError(
        f"BSO server answered {response.status_code} to {method} {path}: {_server_message(response)}"
    )


def _server_message(response: httpx.Response) -> str:
    """The ``message`` (or FastAPI ``detail``) of an error body, else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        if "message" in body:
            return str(body["message"])
        if "detail" in body:
            return _validation_message(body["detail"])
    return str(body)


def _validation_message(detail: Any) -> str:
    """FastAPI's 422 ``detail`` list as ``field: problem; ...``."""
    if not isinstance(detail, list):
        return str(detail)
    parts = []
    for error in detail:
        if not isinstance(error, dict):
            return str(detail)
        loc = [str(p) for p in error.get("loc", []) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'request'}: {error.get('msg', '')}")
    return "; ".join(parts)
