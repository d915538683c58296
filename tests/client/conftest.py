"""A real BSO server (``zeus serve`` in a subprocess on a free loopback port, SQLite in tmp)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ZEUS = str(Path(sys.executable).parent / "zeus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=10)


def start_server(tmp: Path, *extra_args: str) -> LiveServer:
    port = free_port()
    log = tmp / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEUS_BSO_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                ZEUS,
                "serve",
                "--port",
                str(port),
                "--database-url",
                f"sqlite:///{tmp}/bso-{port}.db",
                *extra_args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"zeus serve exited early:\n{log.read_text()}")
        try:
            if server.get("/health").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"zeus serve did not come up:\n{log.read_text()}")


def stop_server(server: LiveServer) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def bso_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("bso-server"))
    yield server
    stop_server(server)


@pytest.fixture(autouse=True)
def _restore_process_hooks() -> Iterator[None]:
    """A client whose trial is still running stays armed (by design); keep that out of pytest."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    excepthook = sys.excepthook
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    sys.excepthook = excepthook
