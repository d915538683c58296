"""The agent's Prometheus metrics: per GPU and per lease, exact at lease edges, never backwards
across agent restarts (SIGKILL included) or device counters that start again; the metrics listener
answers GET /metrics and nothing else."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.agent.helpers import AgentProcess, InProcessAgent, request, settings_in
from tests.device.fake_nvml import FakeBoard, FakeNVML
from zeus.agent.devices import Devices
from zeus.agent.meter import Meter
from zeus.agent.settings import AgentSettings
from zeus.device.agent import agent_gpus, disconnect
from zeus.device.nvml import nvml_gpus
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError
from zeus.monitor import ZeusMonitor

TOKEN = "t0ken-for-the-tests-only"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def series(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return {k: v for (n, k), v in samples.items() if n == name and want <= k}


def one(samples: Samples, name: str, **labels: str) -> float:
    (value,) = series(samples, name, **labels).values()
    return value


def eventually(port: int, check: Callable[[Samples], bool], timeout_s: float = 20) -> Samples:
    """The first scrape for which ``check`` holds (the sampler runs every few tens of ms)."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(port)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, "the metrics never showed what was expected"
        time.sleep(0.02)


def replay_gpus(folder: Path, n: int = 2) -> list[ReplayGPU]:
    return [ReplayGPU("a40-resnet50", index=i, state_dir=folder / "replay") for i in range(n)]


def test_per_gpu_and_per_lease_figures_are_exact(
    short_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEUS_JOB_ID", "resnet-nightly")
    port = free_port()
    settings = settings_in(short_dir, metrics_port=port, metrics_interval_s=0.05)
    devices = replay_gpus(tmp_path)
    with InProcessAgent(settings, devices) as agent:
        first = scrape(port)
        assert one(first, "zeus_agent_gpu_info", gpu="1", simulated="true") == 1.0
        assert one(first, "zeus_agent_gpu_default_power_limit_watts", gpu="0") == 300.0
        assert one(first, "zeus_agent_gpu_energy_joules_total", gpu="0") == 0.0
        assert not series(first, "zeus_agent_gpu_lease_info")

        (gpu,) = agent_gpus(agent.socket, [1])
        monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none")
        with monitor.window("train") as window:
            gpu.set_power_limit_w(200)  # leases the GPU
            for _ in range(7):
                monitor.step(64)
            gpu.set_power_limit_w(175)
            for _ in range(5):
                monitor.step(32)
        assert window.measurement is not None
        measured_j = window.measurement.total_energy_j
        assert measured_j > 0

        held = eventually(
            port, lambda s: one(s, "zeus_agent_gpu_energy_joules_total", gpu="1") == measured_j
        )
        (holder,) = series(held, "zeus_agent_gpu_lease_info", gpu="1")
        assert dict(holder)["job_id"] == "resnet-nightly"
        lease = dict(holder)["lease"]
        assert one(held, "zeus_agent_lease_energy_joules_total", lease=lease) == measured_j
        assert one(held, "zeus_agent_gpu_power_limit_watts", gpu="1") == 175.0
        assert one(held, "zeus_agent_gpu_power_watts", gpu="1") == devices[1].power_w()
        assert one(held, "zeus_agent_gpu_power_limit_changes_total", gpu="1", event="set") == 2.0
        assert one(held, "zeus_agent_gpu_energy_joules_total", gpu="0") == 0.0

        disconnect(agent.socket)  # the lease ends: limit restored, its energy stays shown
        ended = eventually(port, lambda s: not series(s, "zeus_agent_gpu_lease_info"))
        assert one(ended, "zeus_agent_gpu_power_limit_watts", gpu="1") == 300.0
        changes = series(ended, "zeus_agent_gpu_power_limit_changes_total", gpu="1")
        assert {dict(k)["event"]: v for k, v in changes.items()} == {
            "set": 2.0,
            "reset": 0.0,
            "restore": 1.0,
        }
        assert one(ended, "zeus_agent_lease_energy_joules_total", lease=lease) == measured_j

        # Another lease on the same GPU counts from zero; the GPU's total goes on.
        (gpu,) = agent_gpus(agent.socket, [1])
        before_j = gpu.energy_j()
        for _ in range(3):
            gpu.step(64)
        second_j = gpu.energy_j() - before_j
        later = eventually(
            port, lambda s: len(series(s, "zeus_agent_lease_energy_joules_total")) == 2
        )
        leases = series(later, "zeus_agent_lease_energy_joules_total", gpu="1")
        assert sorted(leases.values()) == pytest.approx(sorted([measured_j, second_j]), rel=1e-12)
        assert one(later, "zeus_agent_gpu_energy_joules_total", gpu="1") == pytest.approx(
            measured_j + second_j, rel=1e-12
        )
        disconnect(agent.socket)


def test_the_metrics_listener_answers_metrics_only(short_dir: Path, tmp_path: Path) -> None:
    port, api_port = free_port(), free_port()
    settings = settings_in(
        short_dir, metrics_port=port, tcp_port=api_port, token=TOKEN, metrics_interval_s=0.05
    )
    with InProcessAgent(settings, replay_gpus(tmp_path)) as agent:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/metrics").status_code == 200  # no token needed
        for method, path in [
            ("GET", "/gpus"),
            ("PUT", "/gpus/0/power-limit"),
            ("POST", "/metrics"),
        ]:
            answer = httpx.request(method, base + path, json={"watts": 200})
            assert answer.status_code == 404
            assert answer.json() == {
                "message": "the metrics listener serves GET /metrics only",
                "error": "not_found",
            }
        # The API's TCP listener still wants its token, for /metrics too; the socket serves it.
        assert httpx.get(f"http://127.0.0.1:{api_port}/metrics").status_code == 401
        authorized = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"http://127.0.0.1:{api_port}/metrics", headers=authorized).is_success
        conn = httpx.HTTPTransport(uds=agent.socket)
        with httpx.Client(transport=conn, base_url="http://agent") as client:
            assert "zeus_agent_gpu_power_watts" in client.get("/metrics").text


def test_metrics_are_off_by_default(short_dir: Path, tmp_path: Path) -> None:
    with InProcessAgent(settings_in(short_dir), replay_gpus(tmp_path)) as agent:
        status, body = request(agent.socket, "GET", "/metrics")
        assert status == 404 and body["message"].startswith("metrics are off: start the agent")
        assert agent.app.state.meter is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metrics_port": 9400, "tcp_port": 9400, "token": TOKEN}, "needs a port of its own"),
        ({"metrics_port": 0}, "metrics_port"),
        ({"metrics_interval_s": 0.01}, "metrics_interval_s"),
        ({"metrics_interval_s": "often"}, "metrics_interval_s"),
    ],
)
def test_bad_metrics_settings_name_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ZeusConfigError, match=message):
        AgentSettings.from_env({}, **overrides)


def test_a_busy_metrics_port_is_one_line(short_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        agent = InProcessAgent(settings_in(short_dir, metrics_port=port), replay_gpus(tmp_path))
        with pytest.raises(
            ZeusConfigError, match=f"metrics_port: cannot listen on 127.0.0.1:{port}"
        ):
            agent.__enter__()


def test_counters_survive_an_agent_killed_mid_lease(short_dir: Path) -> None:
    """SIGKILL the agent while this process holds a lease: lease and GPU counters go on from what
    Prometheus last saw (the replay device itself starts again from zero)."""
    port = free_port()
    agent = AgentProcess(
        short_dir,
        "replay:a40-resnet50:2",
        "--metrics-port",
        str(port),
        "--metrics-interval-s",
        "0.05",
    ).start()
    try:
        (gpu,) = agent_gpus(agent.socket, [0])
        for _ in range(4):
            gpu.step(64)
        before_j = gpu.energy_j()
        seen = eventually(
            port, lambda s: one(s, "zeus_agent_gpu_energy_joules_total", gpu="0") == before_j
        )
        (lease,) = [dict(k)["lease"] for k in series(seen, "zeus_agent_gpu_lease_info")]
        agent.kill()
        agent.start()
        after = scrape(port)  # the first sample, taken before the agent served anything
        assert one(after, "zeus_agent_gpu_energy_joules_total", gpu="0") == before_j
        assert one(after, "zeus_agent_lease_energy_joules_total", lease=lease) == before_j
        for _ in range(3):
            gpu.step(128)  # the backend rides out the restart; its lease came back
        total_j = gpu.energy_j()  # the backend adds what the old agent counted
        assert total_j > before_j
        later = eventually(
            port, lambda s: one(s, "zeus_agent_lease_energy_joules_total", lease=lease) == total_j
        )
        assert one(later, "zeus_agent_gpu_energy_joules_total", gpu="0") == total_j
    finally:
        disconnect(agent.socket)
        agent.stop()


def test_a_device_counter_that_starts_again_is_unfolded(tmp_path: Path) -> None:
    board = FakeBoard(uuid="GPU-a", energy_mj=5_000_000)
    nvml = FakeNVML([board])
    meter = Meter(Devices(nvml_gpus(pynvml=nvml)), tmp_path / "energy.json")
    meter.sample()
    nvml.tick(2.0)  # 250 W for 2 s
    assert meter.sample().gpus[0].energy_j == pytest.approx(500.0)
    board.energy_mj = 0  # a driver reload: the counter starts again
    nvml.tick(1.0)
    snapshot = meter.sample()
    assert snapshot.gpus[0].energy_j == pytest.approx(750.0)
    meter.save(snapshot)
    # A new agent process: the totals come back from disk; the counter kept counting meanwhile.
    nvml.tick(4.0)
    again = Meter(Devices(nvml_gpus(pynvml=nvml)), tmp_path / "energy.json")
    again.resume([])
    assert again.sample().gpus[0].energy_j == pytest.approx(1750.0)


def test_gpus_without_a_counter_integrate_power(tmp_path: Path) -> None:
    board = FakeBoard(uuid="GPU-old", arch=4, power_mw=100_000)  # Pascal: no energy counter
    now = [0.0]
    meter = Meter(
        Devices(nvml_gpus(pynvml=FakeNVML([board]))), tmp_path / "e.json", clock=lambda: now[0]
    )
    meter.sample()
    now[0], board.power_mw = 3.0, 200_000
    assert meter.sample().gpus[0].energy_j == pytest.approx(300.0)  # 100 W held for 3 s
    now[0] = 4.0
    assert meter.sample().gpus[0].energy_j == pytest.approx(500.0)


def test_an_unreadable_state_file_starts_from_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "energy.json"
    path.write_text("{not json")
    meter = Meter(Devices(replay_gpus(tmp_path, 1)), path)
    assert meter.sample().gpus[0].energy_j == 0.0
    assert "ignoring unreadable" in caplog.text
