"""The node agent's promise, end to end: real training jobs of an unprivileged user (``nobody``, no
capabilities) profile and apply power limits through `zeus agent` (root) on replay GPUs; a job
killed with SIGKILL gets its GPU's original limit back within 2 s; the agent killed with SIGKILL
while another job holds a changed limit, that job dying meanwhile, restores it when it restarts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.helpers import (
    REPO,
    AgentProcess,
    as_nobody,
    audit,
    limit_w,
    python_for_others,
    request,
)
from zeus.device.replay import ReplayGPU

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="runs the agent as root and the jobs as another user: needs root"
)

PROFILE = "a40-imagenet-resnet50"
EXAMPLE = str(REPO / "examples/power_limit_optimizer/train_single.py")
APPLIED = re.compile(r"chose power limit (\d+) W .*; applied")
NOBODY = 65534


@pytest.fixture
def jobs() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for p in processes:
        p.kill()
        p.wait()


def start_job(
    jobs: list[subprocess.Popen[bytes]], python: str, socket_path: str, gpu: int, folder: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """The power-limit example, training for good on GPU ``gpu`` through the agent, as nobody."""
    log = folder / f"job-gpu{gpu}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = as_nobody(env, folder / "home")
    run["env"].update(ZEUS_GPU=f"agent:{socket_path}", ZEUS_JOB_ID=f"digits-gpu{gpu}")
    args = ["--gpu", str(gpu), "--epochs", "1000", "--warmup-steps", "3", "--profile-steps", "10"]
    with open(log, "wb") as out:
        job = subprocess.Popen([python, EXAMPLE, *args], stdout=out, stderr=out, **run)
    jobs.append(job)
    return job, log


def applied_limit(job: subprocess.Popen[bytes], log: Path, timeout_s: float = 300) -> int:
    """Wait until the job has profiled every limit and applied its choice; that choice."""
    deadline = time.monotonic() + timeout_s
    while (found := APPLIED.search(log.read_text())) is None:
        assert job.poll() is None, f"the job ended ({job.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no limit applied in {timeout_s} s:\n{log.read_text()}"
        time.sleep(0.2)
    return int(found.group(1))


def unprivileged(pid: int) -> bool:
    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return status["Uid"].split()[0] == str(NOBODY) and int(status["CapEff"], 16) == 0


def test_jobs_of_an_unprivileged_user_through_the_agent(
    short_dir: Path, jobs: list[subprocess.Popen[bytes]]
) -> None:
    python = python_for_others(short_dir)
    replay_state = short_dir / "replay"
    agent = AgentProcess(
        short_dir,
        f"replay:{PROFILE}:2",
        "--socket-group",
        str(NOBODY),
        "--allow-uid",
        str(NOBODY),
        env={"ZEUS_STATE_DIR": str(replay_state)},
    ).start()
    socket_path = agent.socket
    try:
        job_a, log_a = start_job(jobs, python, socket_path, 0, short_dir)
        job_b, log_b = start_job(jobs, python, socket_path, 1, short_dir)
        chosen_a, chosen_b = applied_limit(job_a, log_a), applied_limit(job_b, log_b)
        assert unprivileged(job_a.pid) and unprivileged(job_b.pid)
        assert chosen_a < 300 and chosen_b < 300  # a changed limit, for the restores to matter
        assert (limit_w(socket_path, 0), limit_w(socket_path, 1)) == (chosen_a, chosen_b)
        leases = {le["job_id"]: le for le in request(socket_path, "GET", "/leases")[1]}
        assert leases["digits-gpu0"]["uid"] == NOBODY
        assert leases["digits-gpu0"]["pid"] == job_a.pid

        # 1. Job A is SIGKILLed (no handler of its own runs): the agent restores GPU 0.
        job_a.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while limit_w(socket_path, 0) != 300:
            assert time.monotonic() - killed < 2.0, "GPU 0 not restored within 2 s of SIGKILL"
            time.sleep(0.01)
        restored_in_s = time.monotonic() - killed
        assert limit_w(socket_path, 1) == chosen_b  # job B's GPU is left alone
        job_a.wait()

        # 2. The agent is SIGKILLed while job B holds its changed limit; B dies while it is down.
        agent.kill()
        job_b.send_signal(signal.SIGKILL)
        job_b.wait()
        gpu1 = ReplayGPU(PROFILE, index=1, state_dir=replay_state)
        assert gpu1.get_power_limit_w() == chosen_b  # nobody has restored it yet
        agent.start()  # restores from its journal before it serves
        assert limit_w(socket_path, 1) == 300
        assert request(socket_path, "GET", "/leases")[1] == []
    finally:
        agent.stop()

    entries = audit(agent.state_dir)
    sets = [e for e in entries if e["event"] == "set" and e["job_id"] == "digits-gpu0"]
    assert len(sets) >= 9 and all(e["uid"] == NOBODY and e["pid"] == job_a.pid for e in sets)
    assert sets[-1]["new_w"] == chosen_a
    restores = {e["job_id"]: e for e in entries if e["event"] == "restore"}
    assert restores["digits-gpu0"]["old_w"] == chosen_a and restores["digits-gpu0"]["new_w"] == 300
    assert "holder is gone" in restores["digits-gpu0"]["reason"]
    assert restores["digits-gpu1"]["old_w"] == chosen_b
    assert "after an agent restart" in restores["digits-gpu1"]["reason"]
    print(f"GPU 0 restored {restored_in_s * 1000:.0f} ms after SIGKILL")
