"""This process's connection to a node agent, and its lease there (the `agent` backend's transport).

One `AgentClient` per socket and process (`client_for`): the GPU handles of one process share its
connection, its lease and what it last read of each GPU. A forked child gets clients of its own:
the parent's connection and lease are not the child's (and the child's exit does not end them).
"""

from __future__ import annotations

import atexit
import http.client
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeus.agent.schemas import LeaseInfo, Readings
from zeus.agent.settings import DEFAULT_SOCKET
from zeus.errors import (
    GPUNotFoundError,
    NotSupportedError,
    ZeusConfigError,
    ZeusDeviceError,
    ZeusPermissionError,
)

logger = logging.getLogger(__name__)

_ERRORS: dict[str, type[ZeusDeviceError] | type[ZeusConfigError]] = {
    "invalid": ZeusConfigError,
    "unknown_lease": ZeusConfigError,
    "unknown_gpu": GPUNotFoundError,
    "not_supported": NotSupportedError,
    "unauthorized": ZeusPermissionError,
    "forbidden": ZeusPermissionError,
    "not_leased": ZeusPermissionError,
    "lease_conflict": ZeusPermissionError,
    "agent_not_permitted": ZeusPermissionError,
}


def job_id() -> str:
    """The job id leases are recorded under: ``ZEUS_JOB_ID``, else the script's name and pid."""
    return os.environ.get("ZEUS_JOB_ID") or f"{Path(sys.argv[0]).name or 'python'}-{os.getpid()}"


@dataclass
class _Seen:
    """What this process knows of one agent GPU: the last readings and the counts of earlier agent
    processes (their devices' counters started again from zero)."""

    agent: str | None = None
    raw_clock_s: float | None = None
    raw_energy_j: float | None = None
    clock_offset_s: float = 0.0
    energy_offset_j: float = 0.0
    readings: Readings | None = None


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the agent's UNIX socket. The standard library's client: a replay step is one
    request, and this one costs a quarter of httpx's CPU per request (`bench/agent_overhead.py`)."""

    def __init__(self, socket_path: str, timeout_s: float) -> None:
        super().__init__("zeus-agent", timeout=timeout_s)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class Answer:
    """The agent's answer to one request."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str | None:
        """The refusal's code (``not_leased``, ...), None for a success."""
        if self.status < 400:
            return None
        try:
            return str(self.json()["error"])
        except (ValueError, KeyError, TypeError):
            return "device_error"


class AgentClient:
    """This process's connection to one agent, and its lease there. One per socket and process."""

    def __init__(self, socket_path: str, retry_s: float = 10.0, timeout_s: float = 30.0) -> None:
        self.socket_path = socket_path
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self._lock = threading.RLock()
        self._connect()
        atexit.register(self.close)

    def _connect(self) -> None:
        self._pid = os.getpid()
        self._conn = _UnixConnection(self.socket_path, self.timeout_s)
        self.reached = False
        self.lease_id: str | None = None
        self.leased: set[str] = set()
        self.seen: dict[str, _Seen] = {}

    # -- requests ------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Answer:
        """Send one request; retry a lost connection for ``retry_s`` once the agent has answered."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if payload is not None else {}
        with self._lock:
            if os.getpid() != self._pid:  # a forked child: its own connection, its own (no) lease
                self._connect()
            deadline: float | None = None
            while True:
                try:
                    self._conn.request(method, path, body=payload, headers=headers)
                    response = self._conn.getresponse()
                    answer = Answer(response.status, response.read())
                except (OSError, http.client.HTTPException) as e:
                    self._conn.close()
                    if not self.reached:
                        raise self._unreachable(e) from None
                    now = time.monotonic()
                    deadline = deadline or now + self.retry_s
                    if now >= deadline:
                        raise ZeusDeviceError(
                            f"the Zeus agent at {self.socket_path} has not answered for "
                            f"{self.retry_s:g} s ({e}); is it running? (`zeus agent --check`)"
                        ) from None
                    time.sleep(0.05)
                    continue
                self.reached = True
                return answer

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The answer's JSON; Zeus's error for a refusal."""
        answer = self.request(method, path, body)
        if answer.status >= 400:
            raise self._error(answer)
        return answer.json()

    def _error(self, answer: Answer) -> Exception:
        try:
            message = str(answer.json()["message"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {answer.status}"
        return _ERRORS.get(answer.error or "", ZeusDeviceError)(f"Zeus agent: {message}")

    def _unreachable(self, error: Exception) -> ZeusDeviceError:
        path = self.socket_path
        if not os.path.exists(path):
            return ZeusDeviceError(
                f"no Zeus agent socket at {path}: start `zeus agent` on this node, or point "
                "ZEUS_GPU=agent:<socket path> at its socket"
            )
        if isinstance(error, PermissionError):
            return ZeusPermissionError(
                f"no permission to connect to the Zeus agent at {path} (uid {os.getuid()}): ask "
                "the operator to add you to the socket's group (agent setting socket_group)"
            )
        return ZeusDeviceError(
            f"the Zeus agent at {path} does not answer ({error}): is `zeus agent` running?"
        )

    # -- leases, changes, readings -------------------------------------------------------------

    def ensure_lease(self, uuid: str) -> None:
        with self._lock:
            if uuid in self.leased:
                return
            lease = LeaseInfo.model_validate(
                self.call("POST", "/leases", {"gpus": [uuid], "job_id": job_id()})
            )
            self.lease_id = lease.id
            self.leased.add(uuid)

    def change(self, uuid: str, method: str, path: str, body: Any = None) -> Readings:
        """A change of a leased GPU: leases it first if the agent says it must."""
        answer = self.request(method, path, body)
        if answer.error == "not_leased":
            if uuid in self.leased:
                raise ZeusPermissionError(
                    f"Zeus agent: this process's lease on {uuid} is gone (the agent lost its "
                    "journal?); not taking a new one, which would record a changed limit as original"
                )
            self.ensure_lease(uuid)
            answer = self.request(method, path, body)
        if answer.status >= 400:
            raise self._error(answer)
        return self.absorb(uuid, Readings.model_validate_json(answer.body))

    def absorb(self, uuid: str, raw: Readings) -> Readings:
        """Readings as this process reports them: counters continued across agent restarts."""
        with self._lock:
            seen = self.seen.setdefault(uuid, _Seen())
            if seen.agent is not None and raw.agent != seen.agent:
                if _went_back(raw.clock_s, seen.raw_clock_s):
                    seen.clock_offset_s += seen.raw_clock_s or 0.0
                if _went_back(raw.energy_j, seen.raw_energy_j):
                    seen.energy_offset_j += seen.raw_energy_j or 0.0
                logger.warning(
                    "the Zeus agent restarted; %s keeps counting from where it was", uuid
                )
            seen.agent, seen.raw_clock_s, seen.raw_energy_j = raw.agent, raw.clock_s, raw.energy_j
            seen.readings = raw.model_copy(
                update={
                    "clock_s": None if raw.clock_s is None else raw.clock_s + seen.clock_offset_s,
                    "energy_j": None
                    if raw.energy_j is None
                    else raw.energy_j + seen.energy_offset_j,
                }
            )
            return seen.readings

    def clock_offset_s(self, uuid: str) -> float:
        """What earlier agent processes counted on this GPU's virtual clock."""
        seen = self.seen.get(uuid)
        return 0.0 if seen is None else seen.clock_offset_s

    def held_readings(self, uuid: str) -> Readings | None:
        """The last readings of a virtual-time GPU this process holds: nobody else moves it."""
        seen = self.seen.get(uuid)
        return seen.readings if seen is not None and uuid in self.leased else None

    def close(self) -> None:
        """End this process's lease (the agent restores its limits) and the connection."""
        if os.getpid() != self._pid:
            return
        lease_id, self.lease_id = self.lease_id, None
        with self._lock:
            if lease_id is not None:
                try:
                    self._conn.timeout = 2.0
                    if self._conn.sock is not None:
                        self._conn.sock.settimeout(2.0)
                    self._conn.request("DELETE", f"/leases/{lease_id}")
                    self._conn.getresponse().read()
                except (OSError, http.client.HTTPException) as e:  # it sees this process gone soon
                    logger.debug("could not end lease %s: %s", lease_id, e)
            self._conn.close()


def _went_back(new: float | None, old: float | None) -> bool:
    return new is not None and old is not None and new < old


_clients: dict[str, AgentClient] = {}
_clients_lock = threading.Lock()


def client_for(socket_path: str) -> AgentClient:
    with _clients_lock:
        client = _clients.get(socket_path)
        if client is None:
            client = _clients[socket_path] = AgentClient(socket_path)
        return client


def disconnect(socket_path: str = DEFAULT_SOCKET) -> None:
    """End this process's lease at that agent (it restores the limits) and close the connection:
    done at exit anyway; for long-lived processes that are done with their GPUs, and for tests."""
    with _clients_lock:
        client = _clients.pop(socket_path, None)
    if client is not None:
        atexit.unregister(client.close)
        client.close()


def _forget_clients_in_child() -> None:
    """A forked child starts with no client: the parent's connection and lease are not its own."""
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_clients_in_child)
