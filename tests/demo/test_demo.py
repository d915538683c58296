"""`zeus demo`: the whole main job on the replay GPU, locally and through a BSO server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from zeus.demo.job import DEMO_PROFILE
from zeus.demo.savings import compute_savings
from zeus.device.replay import load_profile
from zeus.errors import ZeusConfigError
from zeus.optimizer.power_limit import ZeusCost, choose_power_limit
from zeus.run.history import load_series

ZEUS = [str(Path(sys.executable).with_name("zeus"))]  # the console script of this venv


def run_zeus(*args: str, cwd: Path, timeout_s: int = 900) -> str:
    env = {**os.environ, "COLUMNS": "160", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*ZEUS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _tables(out: str) -> list[str]:
    """The demo's output without the one line that depends on the machine (its wall time)."""
    return [line for line in out.splitlines() if not line.startswith("Finished in")]


def _burn_every_core() -> list[subprocess.Popen[bytes]]:
    code = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 2)]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two demos, one with every core busy: minutes on a loaded machine
def test_demo_is_reproducible_under_load_and_reports_savings(tmp_path: Path) -> None:
    """Two runs of `zeus demo --quick`, the second with every core busy: the same tables to the
    digit, since replay time is virtual. The first run's figures are checked against its history
    and against the replay profile's data."""
    first = run_zeus("demo", "--quick", "--out", "one", cwd=tmp_path)
    burners = _burn_every_core()
    try:
        second = run_zeus("demo", "--quick", "--out", "one", cwd=tmp_path)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert _tables(first) == _tables(second)

    assert f"replay GPU '{DEMO_PROFILE}'" in first and "SIMULATED" in first
    assert "Energy saved:" in first and "Default (b0, max power limit)" in first
    demo = tmp_path / "one"
    assert (demo / "demo.png").read_bytes()[:4] == b"\x89PNG"
    default = load_series(demo / "default")
    assert default is not None
    (run,) = default.runs
    assert (run.batch_size, run.power_limit_w, run.status) == (8, 300, "reached")
    assert "observe only" in Path(run.log_path).read_text()  # Default never changes the limit
    series = load_series(demo / "series")
    assert series is not None and series.completed_recurrences == 6
    reached = [r for r in series.runs if r.reached]
    assert [r.batch_size for r in reached][:1] == [8]  # pruning starts at the default
    assert "profiling power limit" in Path(reached[0].log_path).read_text()  # JIT profiling ran
    savings = compute_savings(run, series.recurrences(), last_n=5)
    assert f"{savings.energy_saved_last:.1%}" in first  # the printed figure comes from history

    # Every batch size runs at the limit that ZeusCost(0.5) picks on the profile's data for it.
    profile = load_profile(DEMO_PROFILE)
    for r in reached:
        data = {
            w: (profile.at(r.batch_size, w).power_w, profile.at(r.batch_size, w).step_time_s)
            for w in range(300, 99, -25)
        }
        assert r.power_limit_w == choose_power_limit(data, ZeusCost(0.5), 300), r


def test_demo_refuses_a_foreign_output_folder(tmp_path: Path) -> None:
    from zeus.cli.demo import _prepare_out

    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ZeusConfigError, match="not a previous zeus demo folder"):
        _prepare_out(tmp_path)
    assert (tmp_path / "mine.txt").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_through_a_bso_server(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "ZEUS_BSO_PORT": str(port)}
    server = subprocess.Popen(
        [*ZEUS, "serve", "--database-url", f"sqlite:///{tmp_path / 'bso.db'}"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        out = run_zeus("demo", "--recurrences", "2", "--server", url, "--out", "d", cwd=tmp_path)
        assert f"BSO server at {url}" in out
        series = load_series(tmp_path / "d" / "series")
        assert series is not None and series.completed_recurrences == 2
        # the server ran pruning from the default batch size, and the master recorded its choices
        assert [r.batch_size for r in series.runs if r.reached][:1] == [8]
        jobs = httpx.get(f"{url}/jobs").json()
        assert len(jobs) == 1
    finally:
        server.terminate()
        server.wait(30)
