"""Node agents for tests, on real UNIX sockets: served from a thread of this process (devices passed
in, e.g. a fake NVML module) or as `zeus agent` in a subprocess (which can be SIGKILLed)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from zeus.agent.app import create_app
from zeus.agent.serve import make_server
from zeus.agent.settings import AgentSettings
from zeus.device.agent import disconnect
from zeus.device.base import GPU

ZEUS = str(Path(sys.executable).parent / "zeus")
REPO = Path(__file__).resolve().parents[2]


def settings_in(folder: Path, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "socket": str(folder / "agent.sock"),
        "state_dir": str(folder / "state"),
        "holder_poll_s": 0.05,
        "log_level": "warning",
    }
    values.update(overrides)
    return AgentSettings(**values)


class InProcessAgent:
    """`create_app` served by uvicorn from a thread, on the settings' UNIX socket."""

    def __init__(self, settings: AgentSettings, gpus: Sequence[GPU] | None = None) -> None:
        self.settings = settings
        self.gpus = gpus

    @property
    def socket(self) -> str:
        return self.settings.socket

    def __enter__(self) -> InProcessAgent:
        self.app = create_app(self.settings, gpus=self.gpus)
        self.server, self.sockets = make_server(self.settings, self.app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": self.sockets}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process agent did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        disconnect(self.socket)
        self.server.should_exit = True
        self.thread.join(20)
        for sock in self.sockets:
            sock.close()
        Path(self.socket).unlink(missing_ok=True)


def request(
    socket_path: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request on a fresh connection (so that the caller is this process, with no lease)."""
    conn = http.client.HTTPConnection("agent", timeout=10)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
    except OSError:
        sock.close()
        raise
    conn.sock = sock
    payload = None if body is None else json.dumps(body)
    all_headers = {"content-type": "application/json", **(headers or {})}
    try:
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return response.status, json.loads(data) if data else None


def limit_w(socket_path: str, gpu: int | str) -> int:
    status, info = request(socket_path, "GET", f"/gpus/{gpu}")
    assert status == 200, info
    return int(info["power_limit_w"])


def audit(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def python_for_others(folder: Path) -> str:
    """A Python interpreter that an unprivileged user can run, with this environment's packages.

    ``sys.executable`` when any user may run it; otherwise (it lives under a private home) a
    virtual environment of the system's Python of the same version whose one ``.pth`` line adds
    this environment's site-packages. Skips the test when there is neither.
    """
    probe = (
        subprocess.run(
            [sys.executable, "-c", "pass"],
            user=65534,
            group=65534,
            capture_output=True,
            check=False,
        )
        if _runnable_by_others(sys.executable)
        else None
    )
    if probe is not None and probe.returncode == 0:
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = Path(f"/usr/bin/python{version}")
    if not system.exists():
        pytest.skip(f"{sys.executable} is private and there is no {system} for other users")
    shim = folder / "python-for-others"
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(shim)], check=True)
    site_packages = next((shim / "lib").glob("python*/site-packages"))
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site_packages / "zeus-test-env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return str(shim / "bin" / "python")


def _runnable_by_others(path: str) -> bool:
    """Every folder on the way to the real interpreter is searchable by others."""
    real = Path(os.path.realpath(path))
    return all(p.stat().st_mode & 0o001 for p in real.parents)


def as_nobody(env: dict[str, str], home: Path) -> dict[str, Any]:
    """``subprocess`` arguments that run a command as ``nobody`` (uid 65534) with ``home``."""
    home.mkdir(exist_ok=True)
    os.chown(home, 65534, 65534)
    clean = {k: v for k, v in env.items() if not k.startswith("ZEUS_")}
    clean.update(HOME=str(home), PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(REPO))
    return {"user": 65534, "group": 65534, "extra_groups": [], "env": clean, "cwd": str(REPO)}


class AgentProcess:
    """`zeus agent` in a subprocess, as root; ``kill()`` is SIGKILL, ``start()`` starts it again."""

    def __init__(self, folder: Path, gpu: str, *args: str, env: dict[str, str] | None = None):
        self.folder = folder
        self.socket = str(folder / "agent.sock")
        self.state_dir = folder / "state"
        self.gpu = gpu
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 60) -> AgentProcess:
        self.starts += 1
        log = open(self.folder / f"agent-{self.starts}.log", "wb")  # noqa: SIM115
        command = [ZEUS, "agent", "--gpu", self.gpu, "--socket", self.socket]
        command += ["--state-dir", str(self.state_dir), *self.args]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if request(self.socket, "GET", "/health")[0] == 200:
                    return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"zeus agent did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.folder.glob("agent-*.log")))

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
