"""The `agent` backend as training code sees it: the optimizer through the agent measures exactly
what it measures on a replay GPU of its own, leases are taken lazily and ended at exit, another
job's lease turns the optimizer observe-only, an agent restart is survived, errors are one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.helpers import (
    REPO,
    AgentProcess,
    InProcessAgent,
    as_nobody,
    audit,
    limit_w,
    python_for_others,
    request,
    settings_in,
)
from tests.device.fake_nvml import FakeBoard, FakeNVML
from tests.optimizer.pl_training import replay_monitor, train
from zeus.device.agent import agent_gpus, disconnect
from zeus.device.nvml import nvml_gpus
from zeus.device.replay import ReplayGPU, load_profile
from zeus.errors import ZeusDeviceError, ZeusPermissionError
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer

HOLD = str(REPO / "tests/agent/hold_limit.py")


@pytest.fixture
def jobs() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for p in processes:
        p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()


def hold(jobs: list[subprocess.Popen[str]], socket_path: str, gpu: int, watts: int) -> int:
    """Start a job that holds ``gpu`` at ``watts``; its pid once the limit is set."""
    env = {**os.environ, "ZEUS_JOB_ID": f"holder-{len(jobs)}", "PYTHONPATH": str(REPO)}
    job = subprocess.Popen(
        [sys.executable, HOLD, socket_path, str(gpu), str(watts)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    jobs.append(job)
    assert job.stdout is not None
    assert job.stdout.readline().startswith("holding"), "the holder did not set its limit"
    return job.pid


def profile(gpus: list[object]) -> dict[int, object]:
    plo = GlobalPowerLimitOptimizer(
        replay_monitor(*gpus),  # type: ignore[arg-type]
        wait_steps=1,
        warmup_steps=2,
        profile_steps=5,
        batch_size=64,
    )
    train(plo, epochs=3, steps_per_epoch=30)
    assert plo.state == "done"
    return {w: m.to_dict() for w, m in plo.measurements.items()}


def test_the_optimizer_through_the_agent_measures_what_it_measures_directly(
    short_dir: Path, tmp_path: Path
) -> None:
    """Virtual time survives the agent: every window's time and energy is the profile's, exactly."""
    direct = profile([ReplayGPU("a40-imagenet-resnet50", state_dir=tmp_path / "direct")])
    served = ReplayGPU("a40-imagenet-resnet50", state_dir=tmp_path / "agent")
    with InProcessAgent(settings_in(short_dir), [served]) as agent:
        through = profile(agent_gpus(agent.socket))  # type: ignore[arg-type]
        assert served.steps == 3 * 30  # every step reached the agent's device
    assert through == direct
    events = [e["event"] for e in audit(short_dir / "state")]
    assert events[0] == "lease" and events[-1] == "release"
    assert events.count("set") == len(direct) + 1  # each candidate, then the chosen limit
    assert served.get_power_limit_w() == 300  # restored at the end (by the optimizer and the agent)


def test_leases_are_lazy_and_end_with_the_process(short_dir: Path, tmp_path: Path) -> None:
    gpus = [ReplayGPU("a40-resnet50", index=i, state_dir=tmp_path) for i in (0, 1)]
    with InProcessAgent(settings_in(short_dir), gpus) as agent:
        mine = agent_gpus(agent.socket)
        mine[1].set_power_limit_w(mine[1].get_power_limit_w())  # the permission probe
        assert request(agent.socket, "GET", "/leases")[1] == []
        mine[1].set_power_limit_w(150)
        (lease,) = request(agent.socket, "GET", "/leases")[1]
        assert lease["gpus"] == ["replay-a40-resnet50-1"] and lease["pid"] == os.getpid()
        assert lease["job_id"].endswith(f"-{os.getpid()}")  # no ZEUS_JOB_ID: script name and pid
        disconnect(agent.socket)  # what exit does
        assert request(agent.socket, "GET", "/leases")[1] == []
        assert limit_w(agent.socket, 1) == 300


def test_another_jobs_lease_makes_the_optimizer_observe_only(
    short_dir: Path, jobs: list[subprocess.Popen[str]]
) -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-shared")])
    with InProcessAgent(settings_in(short_dir), nvml_gpus(pynvml=nvml)) as agent:
        holder = hold(jobs, agent.socket, 0, 250)
        gpus = agent_gpus(agent.socket, pynvml=FakeNVML([FakeBoard(uuid="GPU-shared")]))
        assert not gpus[0].capabilities.set_power_limit
        reason = gpus[0].set_power_limit_denied_reason or ""
        assert f"leased by job 'holder-0' (pid {holder}" in reason
        with pytest.raises(ZeusPermissionError, match="leased by job 'holder-0'"):
            gpus[0].set_power_limit_w(150)
        monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")
        plo = GlobalPowerLimitOptimizer(monitor, wait_steps=1, warmup_steps=1, profile_steps=1)
        train(plo, epochs=1, steps_per_epoch=5)
        assert plo.observe_only and nvml.boards[0].limit_mw == 250_000


def test_an_agent_without_permission_makes_jobs_observe_only(short_dir: Path) -> None:
    board = FakeBoard(uuid="GPU-locked", may_set_limit=False)  # the agent runs without root
    with InProcessAgent(settings_in(short_dir), nvml_gpus(pynvml=FakeNVML([board]))) as agent:
        (gpu,) = agent_gpus(agent.socket, pynvml=FakeNVML([FakeBoard(uuid="GPU-locked")]))
        assert not gpu.capabilities.set_power_limit
        assert "the agent itself may not change" in (gpu.set_power_limit_denied_reason or "")
        with pytest.raises(ZeusPermissionError, match="run it as root or with CAP_SYS_ADMIN"):
            gpu.set_power_limit_w(200)
        monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none")
        plo = GlobalPowerLimitOptimizer(monitor, wait_steps=1, warmup_steps=1, profile_steps=1)
        train(plo, epochs=1, steps_per_epoch=5)
        assert plo.observe_only and board.limit_mw == 400_000


def test_a_killed_holder_is_restored_by_the_agent(
    short_dir: Path, tmp_path: Path, jobs: list[subprocess.Popen[str]]
) -> None:
    gpus = [ReplayGPU("a40-resnet50", index=i, state_dir=tmp_path) for i in (0, 1)]
    with InProcessAgent(settings_in(short_dir, holder_poll_s=0.25), gpus) as agent:
        hold(jobs, agent.socket, 1, 125)
        assert limit_w(agent.socket, 1) == 125
        jobs[0].kill()
        killed = time.monotonic()
        while limit_w(agent.socket, 1) != 300:
            assert time.monotonic() - killed < 2.0, "not restored within 2 s"
            time.sleep(0.01)
        jobs[0].wait()


def test_a_job_keeps_counting_across_an_agent_restart(short_dir: Path) -> None:
    """The agent is SIGKILLed and restarted under a job that holds a lease: the lease comes back
    from the journal, a step sent while the agent is down waits for it, and the replay GPU's
    clock and energy go on from where they were (the restarted device starts from zero)."""
    agent = AgentProcess(short_dir, "replay:a40-imagenet-resnet50").start()
    try:
        (gpu,) = agent_gpus(agent.socket)
        gpu.set_power_limit_w(200)
        for _ in range(3):
            gpu.step(64)
        clock_s, energy_j = gpu.clock_s(), gpu.energy_j()
        agent.kill()
        restarter = threading.Timer(1.0, agent.start)
        restarter.start()
        gpu.step(64)  # retried until the agent is back
        restarter.join()
        at_200 = load_profile("a40-imagenet-resnet50").at(64, 200)
        assert gpu.clock_s() == pytest.approx(clock_s + at_200.step_time_s)
        assert gpu.energy_j() == pytest.approx(energy_j + at_200.step_time_s * at_200.power_w)
        assert gpu.get_power_limit_w() == 200  # the setting outlived the agent, like a driver's
        (lease,) = request(agent.socket, "GET", "/leases")[1]
        assert lease["pid"] == os.getpid()  # taken back from the journal: the holder lives
        disconnect(agent.socket)
        assert limit_w(agent.socket, 0) == 300
    finally:
        agent.stop()


def test_a_forked_child_does_not_end_its_parents_lease(short_dir: Path, tmp_path: Path) -> None:
    gpus = [ReplayGPU("a40-resnet50", state_dir=tmp_path)]
    with InProcessAgent(settings_in(short_dir), gpus) as agent:
        code = f"""
import os, sys
from zeus.device.agent import agent_gpus
(gpu,) = agent_gpus({agent.socket!r})
gpu.set_power_limit_w(150)
child = os.fork()
if child == 0:
    gpu.get_power_limit_w()  # the child reads on a connection of its own
    sys.exit(0)  # runs the child's exit hooks: they must not end the parent's lease
os.waitpid(child, 0)
print(gpu.get_power_limit_w(), flush=True)
"""
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
        )
        assert out.stdout.split() == ["150"]
        events = [e["event"] for e in audit(short_dir / "state")]
        assert events == ["lease", "set", "restore", "release"]  # one release: the parent's


def test_an_unreachable_agent_is_one_line(short_dir: Path) -> None:
    missing = str(short_dir / "none.sock")
    with pytest.raises(ZeusDeviceError, match=r"^no Zeus agent socket at .*: start `zeus agent`"):
        agent_gpus(missing)
    stale = short_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # a socket nobody listens on
        with pytest.raises(ZeusDeviceError, match=r"does not answer .*is `zeus agent` running"):
            agent_gpus(str(stale))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another user")
def test_a_user_outside_the_sockets_group_is_told_what_to_do(
    short_dir: Path, tmp_path: Path
) -> None:
    python = python_for_others(short_dir)
    gpus = [ReplayGPU("a40-resnet50", state_dir=tmp_path)]
    with InProcessAgent(settings_in(short_dir, socket_mode="0600"), gpus) as agent:
        command = [python, "-c", "from zeus.cli import main; main()", "show-env"]
        out = subprocess.run(
            [*command, "--gpu", f"agent:{agent.socket}"],
            capture_output=True,
            text=True,
            timeout=120,
            **as_nobody(dict(os.environ), short_dir / "home"),
        )
    assert out.returncode == 2
    message = out.stderr.replace("\n", "")  # one message (the console wraps it at 140 columns)
    assert message.startswith("error: no permission to connect to the Zeus agent")
    assert "uid 65534" in message and "socket_group" in message and "Traceback" not in message
