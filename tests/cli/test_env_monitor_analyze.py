"""CLI: show-env, monitor energy/power on a replay GPU, analyze the written log."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zeus.analyze import energy
from zeus.cli import app
from zeus.device.replay import load_profile
from zeus.errors import GPUNotFoundError, ZeusConfigError

runner = CliRunner(env={"COLUMNS": "200"})  # no table wrapping


def test_show_env_without_gpu() -> None:
    result = runner.invoke(app, ["show-env", "--rapl-root", "/nonexistent"])
    assert result.exit_code == 0, result.output
    assert "no NVIDIA GPU" in result.output
    assert "no AMD GPU (amdsmi is installed but cannot load" in result.output
    assert "a40-resnet50-x4" in result.output
    assert "CPUs (RAPL): none found" in result.output
    assert "torch" in result.output and "Permissions:" in result.output


def test_show_env_replay_gpus_with_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEUS_GPU", "replay:v100-resnet50:2")
    result = runner.invoke(app, ["show-env", "--profiles"])
    assert result.exit_code == 0, result.output
    assert "100/250/250/250" in result.output
    assert "replay" in result.output
    assert "v100-squad-bert-base-uncased-bs32" in result.output.replace("\n", "")


def test_gpu_table_shows_boards_permissions_and_thermals() -> None:
    """The table show-env prints per vendor, on fake AMD GPUs: a whole GPU and a CPX partition."""
    from rich.console import Console

    from tests.device.fake_amdsmi import FakeAmdGPU, FakeAmdSmi
    from zeus.cli.env import _gpu_table
    from zeus.device.amd import amd_gpus
    from zeus.device.counters import CounterPoller

    smi = FakeAmdSmi([FakeAmdGPU(uuid="whole"), FakeAmdGPU(uuid="part", partition="CPX")])
    assert smi.gpus[0].violations is not None
    smi.gpus[0].violations["active_socket_thrm"] = True
    console = Console(width=400, record=True)
    _gpu_table(console, "amd", amd_gpus(amdsmi=smi, poller=CounterPoller(background=False)))
    lines = console.export_text().splitlines()
    whole = next(line for line in lines if "│ 0 " in line)
    part = next(line for line in lines if "│ 1 " in line)
    assert "AMD Instinct MI300X" in whole and "200/750/750/750" in whole
    assert "│ own " in whole and "61 °C (thermal)" in whole
    assert "no (below)" in part and "shared: asic:0x1234 (figures are the board's)" in part
    assert "GPU 1 limit: no: AMD GPU 1 (part) is a CPX compute partition" in "\n".join(lines)


def test_show_env_rapl_packages(tmp_path: Path) -> None:
    from tests.device.fake_sysfs import make_rapl

    root = make_rapl(tmp_path / "powercap")
    result = runner.invoke(app, ["show-env", "--gpu", "none", "--rapl-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "package 0 + DRAM, package 1 + DRAM" in result.output
    assert "GPUs: none" in result.output


def test_monitor_power_then_analyze(tmp_path: Path) -> None:
    log = tmp_path / "power.csv"
    args = ["monitor", "power", "--out", str(log), "--duration", "0.3", "--interval", "0.02"]
    result = runner.invoke(app, [*args, "--gpu", "replay:a40-resnet50-x4:2:wall"])
    assert result.exit_code == 0, result.output
    assert "replayed" in result.output
    with log.open() as f:
        rows = list(csv.DictReader(f))
    assert {r["gpu"] for r in rows} == {"0", "1"}
    profile = load_profile("a40-resnet50-x4")
    first = next(r for r in rows if r["gpu"] == "1")
    assert float(first["power_w"]) == pytest.approx(profile.at(None, 300, gpu=1).power_w, abs=1e-3)

    result = runner.invoke(app, ["analyze", str(log), "--start", "-0.1"])
    assert result.exit_code == 0, result.output
    expected = energy(log, start=-0.1)
    assert f"{expected:.3f}" in result.output
    assert "0.100 s window" in " ".join(result.output.split())


def test_monitor_energy_with_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEUS_GPU", "replay:v100-bert-base-uncased:wall")
    result = runner.invoke(app, ["monitor", "energy", "--duration", "0.2"])
    assert result.exit_code == 0, result.output
    assert "replay:counter" in result.output
    assert "GPU 0" in result.output and "total GPU energy" in result.output


@pytest.mark.parametrize("command", [["energy", "--duration", "0"], ["power", "--out", "p.csv"]])
def test_monitor_refuses_virtual_time_replay_gpus(command: list[str]) -> None:
    """Nothing marks steps in `zeus monitor`'s process: virtual time would stand still."""
    result = runner.invoke(app, ["monitor", *command, "--gpu", "replay:a40-resnet50"])
    assert isinstance(result.exception, ZeusConfigError)
    assert "replay:<profile>:wall" in str(result.exception)


def test_bad_inputs_raise_zeus_errors(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["monitor", "energy", "--gpu", "replay:a40-resnet50:wall", "--gpu-index", "2"]
    )
    assert isinstance(result.exception, GPUNotFoundError)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_s,gpu,power_w\n1,0,5\n2,0,oops\n")
    result = runner.invoke(app, ["analyze", str(bad)])
    assert isinstance(result.exception, ZeusConfigError)
    assert "line 3, column power_w" in str(result.exception)


def test_cli_user_gets_one_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("when,gpu,power_w\n1,0,5\n")
    proc = subprocess.run(
        [sys.executable, "-c", "from zeus.cli import main; main()", "analyze", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "lacks timestamp_s" in proc.stderr


def test_monitor_power_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    log = tmp_path / "power.csv"
    env = {**os.environ, "ZEUS_GPU": "replay:v100-resnet50:wall", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from zeus.cli import main; main()",
            "monitor",
            "power",
            "--out",
            str(log),
            "--interval",
            "0.02",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not log.exists() or log.read_text().count("\n") < 4):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "wrote" in out and "replayed" in out
    assert energy(log) > 0
