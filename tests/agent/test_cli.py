"""`zeus show-env` through the agent (its leases and what this process may do) and `zeus agent`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.agent.helpers import REPO, InProcessAgent, settings_in
from zeus.cli import app
from zeus.device.replay import ReplayGPU

runner = CliRunner(env={"COLUMNS": "200"})  # no table wrapping


@pytest.fixture
def holder(short_dir: Path, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """An agent on two replay GPUs, GPU 0 held at 175 W by another job; (socket, that job's pid)."""
    gpus = [ReplayGPU("a40-resnet50", index=i, state_dir=tmp_path) for i in (0, 1)]
    with InProcessAgent(settings_in(short_dir), gpus) as agent:
        env = {**os.environ, "ZEUS_JOB_ID": "resnet-nightly", "PYTHONPATH": str(REPO)}
        script = str(REPO / "tests/agent/hold_limit.py")
        job = subprocess.Popen(
            [sys.executable, script, agent.socket, "0", "175"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert job.stdout is not None and job.stdout.readline().startswith("holding")
        try:
            yield agent.socket, job.pid
        finally:
            job.kill()
            job.wait()
            job.stdout.close()


def test_show_env_through_the_agent(holder: tuple[str, int]) -> None:
    socket_path, pid = holder
    result = runner.invoke(app, ["show-env", "--gpu", f"agent:{socket_path}"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "100/300/175/300" in out and "100/300/300/300" in out  # GPU 0 held at 175 W
    assert "no: GPU 0 (replay-a40-resnet50-0) is leased by job" in out  # why it may not set it
    assert f"Agent: {socket_path}: 2 GPU(s)" in out and "1 lease(s)" in out
    assert f"job 'resnet-nightly' (pid {pid}, uid {os.getuid()}) holds" in out
    assert "(restores 300 W)" in out
    assert "this process (uid" in out and "may lease free GPUs" in out
    assert "Permissions:" not in out  # root and CAP_SYS_ADMIN do not matter through the agent


def test_zeus_agent_check(holder: tuple[str, int], short_dir: Path) -> None:
    socket_path, _ = holder
    result = runner.invoke(app, ["agent", "--check", "--socket", socket_path])
    assert result.exit_code == 0, result.output
    assert f"agent at {socket_path}: 2 GPU(s)" in result.output and "1 lease(s)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--check", "--socket", "/nonexistent/agent.sock"], "no Zeus agent socket at"),
        (["--tcp-port", "9999"], "refuses to listen on TCP without a bearer token"),
        (["--gpu", "agent"], "the agent owns the devices itself"),
        (["--socket-mode", "999"], "socket_mode"),
    ],
)
def test_zeus_agent_refuses_in_one_line(args: list[str], message: str) -> None:
    zeus = str(Path(sys.executable).parent / "zeus")
    out = subprocess.run([zeus, "agent", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and message in out.stderr.replace("\n", "")
    assert "Traceback" not in out.stderr
