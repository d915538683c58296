"""HTTP hygiene of a real `zeus serve` process: header size and time limits, the Host allow-list,
cross-origin browser requests, the bearer scheme, and where the token comes from."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import LiveServer, job_spec

pytestmark = pytest.mark.slow

MIB = 1 << 20


@pytest.fixture
def server(tmp_path: Path, servers: Callable[..., LiveServer]) -> LiveServer:
    env = {"ZEUS_BSO_HEADER_TIMEOUT_SECONDS": "1"}
    return servers(f"sqlite:///{tmp_path / 'bso.db'}", env=env)


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _send_big_header(port: int, size: int, answers: list[bytes]) -> None:
    """Send a request whose one header is ``size`` bytes; keep what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = b"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        chunk = b"a" * MIB
        try:
            sock.sendall(head)
            for _ in range(size // MIB):
                sock.sendall(chunk)
            sock.sendall(b"\r\n\r\n")
        except OSError:  # the server closed the connection early: what we expect
            pass
        answers.append(_read_all(sock))


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def test_huge_headers_are_refused_without_buffering_them(server: LiveServer) -> None:
    rss_before = _rss_mib(server.process.pid)
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=_send_big_header, args=(_port(server), 100 * MIB, answers))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 4
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert _rss_mib(server.process.pid) - rss_before < 50  # 4 x 100 MiB were not kept
    big = httpx.get(server.url + "/jobs", headers={"X-Big": "a" * 20_000})
    assert big.status_code == 431 and "16384 bytes" in big.json()["message"]
    assert httpx.get(server.url + "/jobs", headers={"X-Ok": "a" * 8_000}).status_code == 200


def test_slow_or_silent_connections_are_closed(server: LiveServer) -> None:
    port = _port(server)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as silent:
        start = time.monotonic()
        assert _read_all(silent) == b""  # closed, without a word
        assert time.monotonic() - start < 15
    with socket.create_connection(("127.0.0.1", port), timeout=20) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        start = time.monotonic()
        try:
            while time.monotonic() - start < 15:  # one header byte now and then, never the end
                slow.sendall(b"X")
                time.sleep(0.2)
        except OSError:
            pass
        answer = _read_all(slow)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert httpx.get(server.url + "/health").status_code == 200


def test_only_the_servers_own_host_names_are_served(server: LiveServer) -> None:
    port = _port(server)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert httpx.get(server.url + "/jobs", headers={"Host": host}).status_code == 200, host
    # A DNS-rebinding page reaches the server under its own name.
    refused = httpx.get(server.url + "/jobs", headers={"Host": f"attacker.example:{port}"})
    assert refused.status_code == 400
    assert "ZEUS_BSO_ALLOWED_HOSTS" in refused.json()["message"]
    probe = httpx.get(server.url + "/health", headers={"Host": f"10.1.2.3:{port}"})
    assert probe.status_code == 200  # probes that address a pod by IP


def test_allowed_hosts_setting(tmp_path: Path, servers: Callable[..., LiveServer]) -> None:
    url = f"sqlite:///{tmp_path / 'bso.db'}"
    named = servers(url, "--allowed-hosts", "bso.example,localhost")
    assert httpx.get(named.url + "/jobs", headers={"Host": "bso.example"}).status_code == 200
    assert httpx.get(named.url + "/jobs").status_code == 400  # 127.0.0.1 is not listed
    anyone = servers(url, env={"ZEUS_BSO_ALLOWED_HOSTS": "*"})
    assert httpx.get(anyone.url + "/jobs", headers={"Host": "x.example"}).status_code == 200


def test_browsers_cross_origin_requests_are_refused(server: LiveServer) -> None:
    spec = job_spec(job_id="test-origin")
    # A "simple" cross-origin request: no preflight, so only the server can refuse it.
    simple = {"Origin": "http://attacker.example", "Content-Type": "text/plain"}
    refused = httpx.post(server.url + "/jobs", json=spec, headers=simple)
    assert refused.status_code == 403
    assert httpx.get(server.url + "/jobs").json() == []  # nothing was registered
    for origin in ("null", "http://localhost:3000", "https://127.0.0.1"):
        headers = {"Origin": origin}
        assert httpx.post(server.url + "/jobs", json=spec, headers=headers).status_code == 403
    navigated = {"Sec-Fetch-Site": "cross-site"}  # e.g. an <img src> to /jobs/batch_size
    assert httpx.get(server.url + "/jobs", headers=navigated).status_code == 403
    same = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}  # the server's own /docs page
    assert httpx.post(server.url + "/jobs", json=spec, headers=same).status_code == 201


def test_token_from_a_file_or_the_environment_and_a_warning_for_the_argument(
    tmp_path: Path, servers: Callable[..., LiveServer]
) -> None:
    url = f"sqlite:///{tmp_path / 'bso.db'}"
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    by_file = servers(url, "--token-file", str(token_file))
    by_env = servers(url, env={"ZEUS_BSO_TOKEN": "from-env"})
    by_arg = servers(url, "--token", "from-arg")
    for live, token in ((by_file, "from-file"), (by_env, "from-env"), (by_arg, "from-arg")):
        assert httpx.get(live.url + "/jobs").status_code == 401
        for scheme in ("Bearer", "bearer", "BEARER"):
            auth = {"Authorization": f"{scheme} {token}"}
            assert httpx.get(live.url + "/jobs", headers=auth).status_code == 200
    assert "--token shows in the process list" in by_arg.log.read_text()
    assert "process list" not in by_file.log.read_text()
