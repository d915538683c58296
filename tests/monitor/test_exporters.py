"""Windows and power samples as Prometheus metrics: scraped from the process, pushed to a real
Pushgateway (Debian's prometheus-pushgateway, started here on loopback)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError
from zeus.monitor import PowerMonitor, PrometheusExporter, ZeusMonitor
from zeus.monitor.energy import Measurement
from zeus.monitor.exporters import default_window_label, exporter_from_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


def _train_epochs(monitor: ZeusMonitor, epochs: int, steps: int) -> list[float]:
    """Epoch windows named like ZeusDataLoader's; the energy of each."""
    energies = []
    for epoch in range(epochs):
        with monitor.window(f"zeus-dataloader-epoch-{epoch}") as w:
            for _ in range(steps):
                monitor.step(64)
        assert w.measurement is not None
        energies.append(w.measurement.gpu_energy_j[0])
    return energies


def test_pull_endpoint_serves_window_totals_per_job(tmp_path: Path) -> None:
    exporter = PrometheusExporter("resnet-nightly", port=0)
    try:
        gpu = ReplayGPU("a40-imagenet-resnet50", state_dir=tmp_path)
        monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none", exporter=exporter)
        energies = _train_epochs(monitor, epochs=3, steps=5)
        text = httpx.get(f"http://127.0.0.1:{exporter.port}/metrics").text
    finally:
        exporter.close()
    samples = _samples(text)
    labels = {"job_id": "resnet-nightly", "window": "zeus-dataloader-epoch"}
    assert _value(samples, "zeus_window_energy_joules_total", **labels, gpu="0") == pytest.approx(
        sum(energies)
    )
    step_s = gpu.profile.at(64, 300).step_time_s
    assert _value(samples, "zeus_window_time_seconds_total", **labels) == pytest.approx(15 * step_s)
    assert _value(samples, "zeus_windows_total", **labels) == 3.0


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.skip("prometheus-pushgateway is not installed (scripts/install-services.sh)")
    port = _free_port()
    process = subprocess.Popen(
        # In memory only: Debian's default persists to /var/lib/prometheus, shared by every run.
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_push_mode_pushes_to_a_real_pushgateway(tmp_path: Path, pushgateway: str) -> None:
    exporter = PrometheusExporter("bert-sweep", pushgateway=pushgateway, push_interval_s=3600)
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none", exporter=exporter)
    energies = _train_epochs(monitor, epochs=2, steps=3)  # the first window pushes, then throttled
    exporter.close()  # the last push carries both windows
    samples = _samples(httpx.get(f"{pushgateway}/metrics").text)
    labels = {
        "job": "zeus",
        "instance": "",
        "job_id": "bert-sweep",
        "window": "zeus-dataloader-epoch",
    }
    assert _value(samples, "zeus_windows_total", **labels) == 2.0
    assert _value(samples, "zeus_window_energy_joules_total", **labels, gpu="0") == pytest.approx(
        sum(energies)
    )


def test_a_pushgateway_that_is_gone_does_not_stop_training(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = PrometheusExporter("j", pushgateway=f"http://127.0.0.1:{_free_port()}")
    monitor = ZeusMonitor(
        gpus=[ReplayGPU("a40-resnet50", state_dir=tmp_path)],
        cpus=[],
        sync_execution_with="none",
        exporter=exporter,
    )
    _train_epochs(monitor, epochs=1, steps=1)
    assert "push to http://127.0.0.1" in caplog.text


def test_power_samples_set_a_gauge_per_gpu(tmp_path: Path) -> None:
    exporter = PrometheusExporter("p", port=0)
    try:
        gpus = [ReplayGPU("a40-resnet50-x4", index=i, state_dir=tmp_path) for i in range(2)]
        with PowerMonitor(gpus, interval_s=0.5, exporter=exporter):
            for gpu in gpus:
                gpu.step()
        samples = _samples(httpx.get(f"http://127.0.0.1:{exporter.port}/metrics").text)
    finally:
        exporter.close()
    for gpu in gpus:
        value = _value(samples, "zeus_gpu_power_watts", job_id="p", gpu=str(gpu.index))
        assert value == pytest.approx(gpu.power_w(), abs=1e-3)


def test_window_labels_drop_trailing_numbers() -> None:
    assert default_window_label("zeus-dataloader-epoch-12") == "zeus-dataloader-epoch"
    assert default_window_label("zeus-dataloader-eval-3-140234") == "zeus-dataloader-eval"
    assert default_window_label("__GlobalPowerLimitOptimizer_300") == "__GlobalPowerLimitOptimizer"
    assert default_window_label("epoch") == "epoch"
    assert default_window_label("42") == "42"


@pytest.mark.parametrize(
    ("value", "message"),
    [("pull:x", "'pull:<port>' or 'push:<Pushgateway URL>'"), ("push:gw", "Pushgateway URL")],
)
def test_bad_metrics_variable_names_the_allowed_forms(value: str, message: str) -> None:
    with pytest.raises(ZeusConfigError, match=message):
        PrometheusExporter.from_env({"ZEUS_METRICS": value})


def test_one_exporter_per_process_from_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEUS_METRICS", f"pull:{_free_port()}")
    monkeypatch.setenv("ZEUS_JOB_ID", "from-env")
    gpus = [ReplayGPU("a40-resnet50", state_dir=tmp_path)]
    first = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")
    second = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")
    try:
        assert first.exporter is second.exporter is exporter_from_env()
        assert first.exporter is not None and first.exporter.job_id == "from-env"
    finally:
        assert first.exporter is not None
        first.exporter.close()
    monkeypatch.delenv("ZEUS_METRICS")
    assert ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none").exporter is None


def test_missing_prometheus_client_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from zeus.monitor import PrometheusExporter\n"
        "try:\n    PrometheusExporter('j', port=0)\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "ZeusConfigError metrics export needs prometheus-client: "
        "pip install 'zeus-energy[prometheus]'"
    )


def test_exactly_one_of_pull_or_push() -> None:
    with pytest.raises(ZeusConfigError, match="exactly one of port"):
        PrometheusExporter("j")
    with pytest.raises(ZeusConfigError, match="exactly one of port"):
        PrometheusExporter("j", port=0, pushgateway="http://x")
    assert os.environ.get("ZEUS_METRICS") is None


def test_windows_of_one_label_share_their_series() -> None:
    """A window per epoch must not grow the exporter's memory with the epoch count."""
    exporter = PrometheusExporter("j", port=0)
    try:
        measurement = Measurement(1.0, {0: 2.0}, None, None, "counter")
        for epoch in range(50):
            exporter.observe_window(f"zeus-dataloader-epoch-{epoch}", measurement)
        assert len(exporter._series) == 1
        samples = _samples(httpx.get(f"http://127.0.0.1:{exporter.port}/metrics").text)
    finally:
        exporter.close()
    labels = {"job_id": "j", "window": "zeus-dataloader-epoch"}
    assert _value(samples, "zeus_window_energy_joules_total", **labels, gpu="0") == 100.0


def test_a_job_that_exits_pushes_its_last_windows(tmp_path: Path, pushgateway: str) -> None:
    """ZEUS_METRICS=push: nobody calls close(), yet the windows of a process that just exits reach
    the gateway (the exporter is closed at exit)."""
    code = (
        "from zeus.device.replay import ReplayGPU\n"
        "from zeus.monitor import ZeusMonitor\n"
        f"gpu = ReplayGPU('a40-resnet50', state_dir={str(tmp_path)!r})\n"
        "monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with='none')\n"
        "for epoch in range(3):\n"
        "    with monitor.window(f'zeus-dataloader-epoch-{epoch}'):\n"
        "        monitor.step(64)\n"
        "print(gpu.energy_j())\n"
    )
    env = dict(os.environ, ZEUS_METRICS=f"push:{pushgateway}", ZEUS_JOB_ID="short-job")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    samples = _samples(httpx.get(f"{pushgateway}/metrics").text)
    labels = {
        "job": "zeus",
        "instance": "",
        "job_id": "short-job",
        "window": "zeus-dataloader-epoch",
    }
    assert _value(samples, "zeus_windows_total", **labels) == 3.0  # the first push had one
    assert _value(samples, "zeus_window_energy_joules_total", **labels, gpu="0") == pytest.approx(
        float(out.stdout)
    )
