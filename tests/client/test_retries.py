"""Retries with backoff on transient failures, through a real flaky HTTP proxy in front of the server."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.client.conftest import LiveServer, free_port
from tests.client.helpers import replay_monitor, spec
from zeus.errors import ZeusConfigError, ZeusServerError
from zeus.optimizer.batch_size import BatchSizeOptimizer
from zeus.optimizer.batch_size._client_http import BSOHttp


class FlakyProxy(ThreadingHTTPServer):
    """Forwards to ``upstream``; the first ``failures`` requests per (method, path) fail instead:
    with HTTP ``status``, or by closing the connection without answering when ``status`` is 0."""

    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        failures: int,
        status: int,
        port: int = 0,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.upstream, self.failures, self.status = upstream, failures, status
        self.retry_after = retry_after
        self.seen: Counter[str] = Counter()
        self.arrivals: list[float] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FlakyProxy
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        key = f"{self.command} {self.path.split('?')[0]}"
        with self.server.lock:
            self.server.seen[key] += 1
            self.server.arrivals.append(time.monotonic())
            fail = self.server.seen[key] <= self.server.failures
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if fail and self.server.status == 0:
            self.close_connection = True
            return
        if fail:
            self._answer(self.server.status, b'{"message": "try later"}')
            return
        upstream = httpx.request(
            self.command, self.server.upstream + self.path, content=body,
            headers={"Content-Type": "application/json"}, timeout=30,
        )  # fmt: skip
        self._answer(upstream.status_code, upstream.content)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        if status >= 500 and self.server.retry_after is not None:
            self.send_header("Retry-After", self.server.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(proxy: FlakyProxy) -> threading.Thread:
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def flaky(bso_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[FlakyProxy]:
    failures, status = request.param
    proxy = FlakyProxy(bso_server.url, failures, status)
    _serve(proxy)
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def _client(url: str, max_retries: int = 3) -> BatchSizeOptimizer:
    return BatchSizeOptimizer(
        replay_monitor(), url, spec(), max_retries=max_retries, backoff_s=0.01
    )


@pytest.mark.parametrize("flaky", [(2, 503), (2, 502), (2, 504), (2, 0)], indirect=True)
def test_transient_failures_are_retried(flaky: FlakyProxy) -> None:
    bso = _client(flaky.url)
    assert bso.get_batch_size() == 32
    assert flaky.seen["POST /jobs"] == 3 and flaky.seen["GET /jobs/batch_size"] == 3
    bso.on_train_begin()
    bso.monitor.step(bso.current_batch_size)  # an epoch's work on the replay GPU
    bso.on_evaluate(0.99)
    assert bso.converged and flaky.seen["POST /report"] == 3
    bso.close()


@pytest.mark.parametrize("flaky", [(10, 503)], indirect=True)
def test_retries_are_bounded(flaky: FlakyProxy) -> None:
    bso = _client(flaky.url, max_retries=2)
    with pytest.raises(ZeusServerError, match="503 to POST /jobs: try later"):
        bso.get_batch_size()
    assert flaky.seen["POST /jobs"] == 3
    bso.close()


@pytest.mark.parametrize("flaky", [(0, 0)], indirect=True)
def test_client_errors_are_not_retried(flaky: FlakyProxy) -> None:
    bso = _client(flaky.url)
    bso.get_batch_size()
    bso.on_train_begin()
    # a report for a trial the server does not know: 4xx, surfaced at once
    real_trial, bso._trial_number = bso._trial_number, 999
    with pytest.raises(ZeusServerError, match=r"answered 4\d\d to POST /report"):
        bso.on_evaluate(0.5)
    assert flaky.seen["POST /report"] == 1
    bso._trial_number = real_trial
    bso.end_trial_as_failed()
    bso.close()


@pytest.mark.parametrize("flaky", [(0, 0)], indirect=True)
def test_one_connection_is_reused(flaky: FlakyProxy) -> None:
    ports: set[int] = set()
    original = _Handler.setup

    def remember_port(handler: _Handler) -> None:
        original(handler)
        ports.add(handler.client_address[1])

    _Handler.setup = remember_port  # type: ignore[method-assign]
    try:
        bso = _client(flaky.url)
        bso.get_batch_size()
        bso.on_train_begin()
        bso.monitor.step(bso.current_batch_size)
        bso.on_evaluate(0.5)
    finally:
        _Handler.setup = original  # type: ignore[method-assign]
    assert sum(flaky.seen.values()) == 3 and len(ports) == 1
    bso.end_trial_as_failed()
    bso.close()


def test_retry_after_is_honoured(bso_server: LiveServer) -> None:
    proxy = FlakyProxy(bso_server.url, 1, 503, retry_after="1")
    _serve(proxy)
    try:
        http = BSOHttp(proxy.url, max_retries=2, backoff_s=0.01)
        assert http.request("GET", "/jobs") is not None
        http.close()
    finally:
        proxy.shutdown()
        proxy.server_close()
    first, second = proxy.arrivals
    assert second - first >= 1.0  # the server's Retry-After, not the 10 ms backoff


def test_validation_errors_name_the_field(bso_server: LiveServer) -> None:
    http = BSOHttp(bso_server.url)
    bad_spec = {**spec().to_wire(), "batch_sizes": [], "max_power": 300, "number_of_gpus": 1}
    with pytest.raises(ZeusServerError, match=r"422 to POST /jobs: batch_sizes: List should"):
        http.request("POST", "/jobs", json={**bad_spec, "gpu_model": "A40"})
    http.close()


def test_a_server_that_starts_late_is_waited_for(bso_server: LiveServer) -> None:
    port = free_port()
    proxy_box: list[FlakyProxy] = []

    def start_late() -> None:
        proxy_box.append(FlakyProxy(bso_server.url, 0, 0, port=port))
        proxy_box[0].serve_forever()

    timer = threading.Timer(0.3, start_late)
    timer.start()
    try:
        bso = BatchSizeOptimizer(
            replay_monitor(), f"http://127.0.0.1:{port}", spec(), max_retries=8, backoff_s=0.05
        )
        assert bso.get_batch_size() == 32
        bso.end_trial_as_failed()
        bso.close()
    finally:
        while not proxy_box:
            time.sleep(0.05)
        proxy_box[0].shutdown()  # returns once serve_forever has stopped
        timer.join()
        proxy_box[0].server_close()


def test_an_unreachable_server_is_one_clear_error() -> None:
    bso = BatchSizeOptimizer(
        replay_monitor(), f"http://127.0.0.1:{free_port()}", spec(), max_retries=2, backoff_s=0.01
    )
    with pytest.raises(ZeusServerError, match=r"unreachable .* after 3 attempts"):
        bso.get_batch_size()
    bso.close()


def test_bad_client_settings_are_config_errors() -> None:
    with pytest.raises(ZeusConfigError, match="server_url"):
        BatchSizeOptimizer(replay_monitor(), "bso:8000", spec())
    with pytest.raises(ZeusConfigError, match="max_retries"):
        BatchSizeOptimizer(replay_monitor(), "http://bso", spec(), max_retries=-1)
