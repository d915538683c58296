"""Zeus as operators run it, on loopback: a node agent on replay GPUs with metrics on, the batch size
optimizer server, a Pushgateway, and a real Prometheus (Debian's) scraping all three with the
project's example configuration (``deploy/prometheus/prometheus.yml``, its targets pointed here and
its interval set to 1 s). Recurrences of a job (``recurrence.py``) run against it.

Used by ``test_dashboard.py`` and by ``scripts/render_dashboard.py``, which draws the dashboard from
the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROFILE = "a40-imagenet-resnet50"
JOB_ID = "digits-nightly"
INTERVAL_S = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_binaries() -> list[str]:
    return [b for b in ("prometheus", "prometheus-pushgateway") if shutil.which(b) is None]


def _wait(
    what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if ready():
                return
        except (httpx.TransportError, OSError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@contextmanager
def _process(
    what: str, command: list[str], folder: Path, ready: Callable[[], bool]
) -> Iterator[subprocess.Popen[bytes]]:
    log = folder / f"{what}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(what, ready, process, log)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


class Prometheus:
    """Prometheus's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30)

    def _get(self, path: str, **params: Any) -> Any:
        answer = self.client.get(path, params=params).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant vector: ``[{"metric": {labels}, "value": [t, "v"]}, ...]``."""
        data = self._get("/api/v1/query", query=expr, **({} if at is None else {"time": at}))
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        """A range: ``[{"metric": {labels}, "values": [[t, "v"], ...]}, ...]``."""
        data = self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self._get(f"/api/v1/label/{label}/values", **{"match[]": match})
        return values

    def wait_for(
        self, expr: str, ok: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 60
    ) -> list[dict[str, Any]]:
        """The first answer to ``expr`` for which ``ok`` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if ok(result):
                return result
            assert time.monotonic() < deadline, f"Prometheus never answered as expected: {expr}"
            time.sleep(0.25)


@dataclass
class Stack:
    folder: Path
    agent_socket: str
    agent_state: Path
    server_url: str
    pushgateway_url: str
    prometheus: Prometheus
    started_at: float
    token: str
    recurrences: list[dict[str, Any]] = field(default_factory=list)

    def run_recurrence(self) -> dict[str, Any]:
        """One recurrence of the job: trains, holds its chosen limit until Prometheus has seen it
        and the trial's result, then exits (and its lease ends)."""
        env = dict(
            os.environ,
            ZEUS_GPU=f"agent:{self.agent_socket}",
            ZEUS_JOB_ID=JOB_ID,
            ZEUS_METRICS=f"push:{self.pushgateway_url}",
        )
        env.pop("ZEUS_STATE_DIR", None)
        job = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("recurrence.py")),
                "--server-url",
                self.server_url,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert job.stdout is not None and job.stdin is not None
            line = job.stdout.readline()
            if not line:
                raise RuntimeError(f"the recurrence failed:\n{job.communicate()[1][-3000:]}")
            result: dict[str, Any] = json.loads(line)
            number = result["trial_number"]
            self.prometheus.wait_for(
                f'max(zeus_bso_job_last_trial_number{{job_id="{JOB_ID}"}})',
                lambda r: bool(r) and float(r[0]["value"][1]) == number,
            )
            if result["power_limit_w"] is not None:
                self.prometheus.wait_for(
                    'zeus_agent_gpu_power_limit_watts{gpu="0"}',
                    lambda r: bool(r) and float(r[0]["value"][1]) == result["power_limit_w"],
                )
            self.prometheus.wait_for(
                f'zeus_agent_gpu_lease_info{{job_id="{JOB_ID}"}}', lambda r: len(r) == 1
            )
            job.stdin.write("\n")
            job.stdin.flush()
            _, err = job.communicate(timeout=60)
            assert job.returncode == 0, err[-3000:]
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
        self.prometheus.wait_for(  # the lease ended: the next recurrence leases anew
            f'zeus_agent_gpu_lease_info{{job_id="{JOB_ID}"}}', lambda r: not r
        )
        self.recurrences.append(result)
        return result

    def trials(self) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.server_url}/jobs/{JOB_ID}",
            headers={"authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        answer.raise_for_status()
        trials: list[dict[str, Any]] = answer.json()["trials"]
        return trials

    def audit(self) -> list[dict[str, Any]]:
        path = self.agent_state / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


def prometheus_config(
    agent: str, server: str, pushgateway: str, token_file: Path, interval_s: int
) -> dict[str, Any]:
    """The example configuration with its targets pointed at this stack."""
    config: dict[str, Any] = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": f"{interval_s}s", "scrape_timeout": f"{interval_s}s"}
    targets = {"zeus-agent": agent, "zeus-bso": server, "zeus-pushgateway": pushgateway}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(targets) < set(jobs), jobs.keys()
    for name, target in targets.items():
        jobs[name]["static_configs"] = [{"targets": [target]}]
    jobs["zeus-bso"]["authorization"]["credentials_file"] = str(token_file)
    del jobs["zeus-training"]  # recurrences push: a pull target would only be down here
    config["scrape_configs"] = list(jobs.values())
    return config


@contextmanager
def stack(folder: Path, gpus: int = 1) -> Iterator[Stack]:
    """Everything started, Prometheus scraping every target; all stopped on the way out."""
    token = "observability-test-token"
    ports = {name: free_port() for name in ("agent", "server", "pushgateway", "prometheus")}
    with ExitStack() as stop:
        sock, state = str(folder / "agent.sock"), folder / "agent-state"
        stop.enter_context(
            _process(
                "agent",
                [
                    str(BIN / "zeus"),
                    "agent",
                    "--gpu",
                    f"replay:{PROFILE}:{gpus}",
                    "--socket",
                    sock,
                    "--state-dir",
                    str(state),
                    "--metrics-port",
                    str(ports["agent"]),
                    "--metrics-interval-s",
                    "0.2",
                ],
                folder,
                lambda: (
                    Path(sock).exists()
                    and httpx.get(f"http://127.0.0.1:{ports['agent']}/metrics").is_success
                ),
            )
        )
        server_url = f"http://127.0.0.1:{ports['server']}"
        env_token = os.environ.get("ZEUS_BSO_TOKEN")
        os.environ["ZEUS_BSO_TOKEN"] = token  # the server reads it; so do the recurrences
        stop.callback(_restore_env, "ZEUS_BSO_TOKEN", env_token)
        stop.enter_context(
            _process(
                "server",
                [
                    str(BIN / "zeus"),
                    "serve",
                    "--port",
                    str(ports["server"]),
                    "--database-url",
                    f"sqlite:///{folder}/bso.db",
                ],
                folder,
                lambda: httpx.get(f"{server_url}/health").is_success,
            )
        )
        gateway = f"http://127.0.0.1:{ports['pushgateway']}"
        stop.enter_context(
            _process(
                "pushgateway",
                [
                    "prometheus-pushgateway",
                    f"--web.listen-address=127.0.0.1:{ports['pushgateway']}",
                    "--persistence.file=",  # Debian's default persists to /var/lib/prometheus
                ],
                folder,
                lambda: httpx.get(f"{gateway}/-/ready").is_success,
            )
        )
        token_file = folder / "bso-token"
        token_file.write_text(token)
        config = prometheus_config(
            f"127.0.0.1:{ports['agent']}",
            f"127.0.0.1:{ports['server']}",
            f"127.0.0.1:{ports['pushgateway']}",
            token_file,
            INTERVAL_S,
        )
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        url = f"http://127.0.0.1:{ports['prometheus']}"
        stop.enter_context(
            _process(
                "prometheus",
                [
                    "prometheus",
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'tsdb'}",
                    "--log.level=warn",
                    f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                ],
                folder,
                lambda: httpx.get(f"{url}/-/ready").is_success,
            )
        )
        prometheus = Prometheus(url)
        stop.callback(prometheus.client.close)
        started_at = time.time()
        # Every target up, and the agent's counters seen at zero before any job runs.
        prometheus.wait_for("up == 1", lambda r: len(r) == 3)
        prometheus.wait_for("zeus_agent_gpu_energy_joules_total", lambda r: len(r) == gpus)
        yield Stack(folder, sock, state, server_url, gateway, prometheus, started_at, token)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
