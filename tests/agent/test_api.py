"""The agent's HTTP API on a real UNIX socket (and TCP): answers, refusals, tokens, the socket."""

from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import httpx
import pytest

from tests.agent.helpers import InProcessAgent, audit, request, settings_in
from zeus.agent.serve import bind_unix
from zeus.agent.settings import AgentSettings
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError

TOKEN = "t0ken-for-the-tests-only"


def replay_gpus(tmp_path: Path, n: int = 2) -> list[ReplayGPU]:
    return [ReplayGPU("a40-resnet50", index=i, state_dir=tmp_path / "replay") for i in range(n)]


def test_reads_and_the_callers_view(short_dir: Path, tmp_path: Path) -> None:
    with InProcessAgent(settings_in(short_dir), replay_gpus(tmp_path)) as agent:
        status, gpus = request(agent.socket, "GET", "/gpus")
        assert status == 200 and [g["uuid"] for g in gpus] == [
            "replay-a40-resnet50-0",
            "replay-a40-resnet50-1",
        ]
        assert gpus[0]["power_limit_w"] == 300 and gpus[0]["virtual_time"] and gpus[0]["may_set"]
        status, me = request(agent.socket, "GET", "/caller")
        assert me == {
            "transport": "unix",
            "pid": os.getpid(),
            "uid": os.getuid(),
            "may_lease": True,
            "reason": None,
            "lease": None,
        }
        status, readings = request(agent.socket, "GET", "/gpus/1/readings")
        assert status == 200 and readings["clock_s"] == 0.0 and readings["energy_j"] == 0.0
        status, health = request(agent.socket, "GET", "/health")
        assert health["gpus"] == 2 and health["leases"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error", "message"),
    [
        ("GET", "/gpus/9", None, 404, "unknown_gpu", r"allowed indices 0..1"),
        ("PUT", "/gpus/0/power-limit", {"watts": "lots"}, 422, "invalid", "watts: "),
        ("PUT", "/gpus/0/power-limit", {"watts": 300, "x": 1}, 422, "invalid", "x: "),
        ("PUT", "/gpus/0/power-limit", {"watts": 99}, 400, "invalid", r"allowed 100..300 W"),
        ("PUT", "/gpus/0/power-limit", {"watts": 150}, 403, "not_leased", "lease it first"),
        ("POST", "/gpus/0/steps", {"batch_size": 0}, 422, "invalid", "batch_size: "),
        ("POST", "/leases", {"gpus": [], "job_id": "j"}, 422, "invalid", "gpus: "),
        ("POST", "/leases", {"gpus": ["0"], "job_id": "a\nb"}, 422, "invalid", "job_id: "),
        ("DELETE", "/leases/nope", None, 404, "unknown_lease", "does not exist"),
        ("GET", "/gpus/0/power-timeline?start_s=2&end_s=1", None, 400, "invalid", "end_s"),
        ("GET", "/nowhere", None, 404, "not_found", "Not Found"),
    ],
)
def test_refusals_are_one_line_with_a_code(
    short_dir: Path,
    tmp_path: Path,
    method: str,
    path: str,
    body: object,
    status: int,
    error: str,
    message: str,
) -> None:
    with InProcessAgent(settings_in(short_dir), replay_gpus(tmp_path)) as agent:
        got_status, answer = request(agent.socket, method, path, body)
        assert (got_status, answer["error"]) == (status, error), answer
        assert "\n" not in answer["message"]
        assert re.search(message, answer["message"]), answer


def test_large_bodies_are_refused(short_dir: Path, tmp_path: Path) -> None:
    settings = settings_in(short_dir, max_body_bytes=100)
    with InProcessAgent(settings, replay_gpus(tmp_path)) as agent:
        status, answer = request(
            agent.socket, "POST", "/leases", {"gpus": ["0"] * 60, "job_id": "j"}
        )
        assert status == 413 and answer["error"] == "too_large"


def test_tcp_needs_the_token_and_only_reads(short_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_in(short_dir, tcp_port=port, token=TOKEN)
    with InProcessAgent(settings, replay_gpus(tmp_path)) as agent:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health").status_code == 200  # open, for probes
        assert httpx.get(f"{url}/gpus").status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert httpx.get(f"{url}/gpus", headers=wrong).status_code == 401
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}/gpus", headers=auth).status_code == 200
        assert httpx.get(f"{url}/caller", headers=auth).json()["transport"] == "remote"
        refused = httpx.post(f"{url}/leases", json={"gpus": ["0"], "job_id": "j"}, headers=auth)
        assert refused.status_code == 403 and "TCP is read-only" in refused.json()["message"]
        # The UNIX socket needs no token: the kernel says who calls.
        assert request(agent.socket, "GET", "/gpus")[0] == 200
    assert audit(short_dir / "state")[-1]["event"] == "refused"


def test_no_tcp_without_a_token() -> None:
    with pytest.raises(ZeusConfigError, match="refuses to listen on TCP without a bearer token"):
        AgentSettings.from_env({}, tcp_port=9999)
    with pytest.raises(ZeusConfigError, match="ZEUS_AGENT_HOLDER_POLL_S"):
        AgentSettings.from_env({"ZEUS_AGENT_HOLDER_POLL_S": "5"})
    with pytest.raises(ZeusConfigError, match="group 'no-such-group-here' does not exist"):
        AgentSettings.from_env({"ZEUS_AGENT_ALLOW_GROUPS": "0,no-such-group-here"})
    with pytest.raises(ZeusConfigError, match="the agent owns the devices itself"):
        AgentSettings.from_env({"ZEUS_AGENT_GPU": "agent:/run/zeus/agent.sock"})
    settings = AgentSettings.from_env({"ZEUS_AGENT_ALLOW_UIDS": "1000, 1001"})
    assert settings.allow_uids == (1000, 1001)


def test_the_socket_gets_its_mode_and_group_and_a_stale_one_is_replaced(short_dir: Path) -> None:
    path = short_dir / "run" / "agent.sock"
    path.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on: what a killed agent leaves
    sock = bind_unix(path, 0o660, "65534")
    try:
        sock.listen()
        mode = path.stat()
        assert stat.S_IMODE(mode.st_mode) == 0o660 and mode.st_gid == 65534
        with pytest.raises(ZeusConfigError, match="another agent is listening"):
            bind_unix(path, 0o660, None)
    finally:
        sock.close()
    (short_dir / "file").write_text("")
    with pytest.raises(ZeusConfigError, match="exists and is not a socket"):
        bind_unix(short_dir / "file", 0o660, None)
