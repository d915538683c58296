"""GPUs reached through the node agent (`zeus agent`): the training process needs no privileges.

``ZEUS_GPU=agent[:<socket path>]`` (default ``/run/zeus/agent.sock``). Reads (limits, power, energy)
go to the agent; so do changes, which the agent grants to the process holding a *lease* on the GPU.

* **Which GPUs.** Those this process sees, indexed as CUDA indexes them. The agent serves every GPU
  of its node while a container sees only its own: hardware GPUs are matched by UUID, read through
  NVML (reading needs no privilege; ``CUDA_VISIBLE_DEVICES`` is honoured), else taken from
  ``NVIDIA_VISIBLE_DEVICES`` when it lists UUIDs. Replay GPUs are the agent's, in its order.
* **Leases** are taken per GPU the first time the process changes a limit or marks a step, under
  the job id ``ZEUS_JOB_ID`` (else the script's name and pid), and end when the process exits
  (or, however it dies, when the agent sees it gone: the agent then restores the limits). Writing the
  current limit back, the power-limit optimizer's permission probe, needs no lease.
* **Virtual time.** A replay GPU lives in the agent; its clock advances by the steps its lease
  holder marks (one request per step). Every step and change answers with the device's new
  readings, and only the holder moves the device, so the holder reads clock, energy and power from
  those answers without a request. An agent restart starts the device's counters again from zero;
  this process adds what was counted before, so its clock and energy never go backwards.
* **Failures.** A missing socket, a refused connection or one without permission is one line that
  says what to do. Once the agent has answered, a lost connection is retried for ``retry_s``
  (an agent restarting), then fails with `ZeusDeviceError`.
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
from urllib.parse import urlencode

from zeus.agent.schemas import GPUInfo, LeaseInfo, PowerTimeline, Readings
from zeus.agent.settings import DEFAULT_SOCKET
from zeus.device.base import GPUCapabilities
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
                            f"{self.retry_s:g} s ({e}); is it running? (systemctl status zeus-agent)"
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


class AgentGPU:
    """One GPU served by the agent. Implements `zeus.device.GPU`."""

    def __init__(self, client: AgentClient, info: GPUInfo, index: int) -> None:
        self._client = client
        self._info = info
        self._index = index
        self._path = f"/gpus/{info.uuid}"

    # -- identity and capabilities ---------------------------------------------------------------

    @property
    def index(self) -> int:
        return self._index

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def uuid(self) -> str:
        return self._info.uuid

    @property
    def node_index(self) -> int:
        """The GPU's index on the node, in the agent's order."""
        return self._info.index

    @property
    def capabilities(self) -> GPUCapabilities:
        info = self._info
        return GPUCapabilities(
            energy_counter=info.energy_counter,
            set_power_limit=info.may_set,
            virtual_time=info.virtual_time,
            simulated=info.simulated,
        )

    @property
    def set_power_limit_denied_reason(self) -> str | None:
        """Why this process may not change the limit, as the agent said when the GPU was opened."""
        return self._info.may_set_reason

    @property
    def min_power_limit_w(self) -> int:
        return self._info.min_power_limit_w

    @property
    def max_power_limit_w(self) -> int:
        return self._info.max_power_limit_w

    @property
    def default_power_limit_w(self) -> int:
        return self._info.default_power_limit_w

    def __repr__(self) -> str:
        return (
            f"AgentGPU(index={self._index}, uuid={self.uuid!r}, agent={self._client.socket_path!r})"
        )

    # -- power limit -------------------------------------------------------------------------------

    def get_power_limit_w(self) -> int:
        return self._readings().power_limit_w

    def set_power_limit_w(self, watts: int) -> None:
        if watts != watts or int(watts) != watts:
            raise ZeusConfigError(f"power limit must be a whole number of watts, got {watts!r}")
        lo, hi = self.min_power_limit_w, self.max_power_limit_w
        if not lo <= watts <= hi:
            raise ZeusConfigError(
                f"power limit {watts} W is outside the range of {self.name} GPU {self._index}: "
                f"allowed {lo}..{hi} W"
            )
        self._client.change(self.uuid, "PUT", f"{self._path}/power-limit", {"watts": int(watts)})
        logger.debug(
            "GPU %d (%s): power limit %d W through the agent", self._index, self.uuid, watts
        )

    def reset_power_limit(self) -> None:
        self._client.change(self.uuid, "DELETE", f"{self._path}/power-limit")

    # -- work, time, power and energy --------------------------------------------------------------

    def step(self, batch_size: int | None = None, *, forward_only: bool = False) -> None:
        """On a virtual-time GPU, one request that advances the agent's device; else nothing."""
        if not self._info.virtual_time:
            return
        if batch_size is not None and batch_size < 1:
            raise ZeusConfigError(f"batch_size must be >= 1, got {batch_size}")
        body = {"batch_size": batch_size, "forward_only": forward_only}
        self._client.change(self.uuid, "POST", f"{self._path}/steps", body)

    def clock_s(self) -> float:
        if not self._info.virtual_time:
            return time.monotonic()
        clock_s = self._readings().clock_s
        assert clock_s is not None
        return clock_s

    def power_w(self) -> float:
        return self._readings().power_w

    def energy_j(self) -> float:
        if not self._info.energy_counter:
            raise NotSupportedError(
                f"GPU {self._index} ({self.name}) has no energy counter; use power sampling "
                "(PowerMonitor)"
            )
        energy_j = self._readings().energy_j
        assert energy_j is not None
        return energy_j

    def power_timeline_w(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        if not self._info.virtual_time:
            raise NotSupportedError(f"{self!r} runs on wall time: sample power_w() (PowerMonitor)")
        offset_s = self._client.seen.get(self.uuid, _Seen()).clock_offset_s
        query = urlencode({"start_s": start_s - offset_s, "end_s": end_s - offset_s})
        timeline = PowerTimeline.model_validate(
            self._client.call("GET", f"{self._path}/power-timeline?{query}")
        )
        return [(t + offset_s, w) for t, w in timeline.points]

    def synchronize(self) -> None:
        """Nothing to wait for: the framework syncs real GPUs; virtual time has no queue."""

    def _readings(self) -> Readings:
        if self._info.virtual_time:
            held = self._client.held_readings(self.uuid)
            if held is not None:
                return held
        raw = Readings.model_validate(self._client.call("GET", f"{self._path}/readings"))
        return self._client.absorb(self.uuid, raw)


# -- opening -----------------------------------------------------------------------------------------


def agent_gpus(
    socket_path: str = DEFAULT_SOCKET, indices: list[int] | None = None, *, pynvml: Any = None
) -> list[AgentGPU]:
    """The agent's GPUs that this process sees (all, or those at ``indices``). ``pynvml``: an NVML
    module object to read this process's GPU UUIDs with (tests pass a fake)."""
    from zeus.device import select_indices

    client = client_for(socket_path)
    infos = [GPUInfo.model_validate(g) for g in client.call("GET", "/gpus")]
    visible = _visible(infos, socket_path, pynvml)
    wanted = select_indices(indices, len(visible), f"agent:{socket_path}")
    return [AgentGPU(client, visible[i], i) for i in wanted]


def open_gpus(arg: str, indices: list[int] | None) -> list[AgentGPU]:
    """The ``agent[:<socket path>]`` backend of `zeus.device.get_gpus`."""
    return agent_gpus(arg or DEFAULT_SOCKET, indices)


def _visible(infos: list[GPUInfo], socket_path: str, pynvml: Any) -> list[GPUInfo]:
    if all(info.simulated for info in infos):
        return infos  # replay GPUs exist only in the agent: no hardware to match
    uuids = _process_uuids(pynvml)
    if uuids is None:
        logger.warning(
            "cannot tell which GPUs this process sees (no NVML here, NVIDIA_VISIBLE_DEVICES lists "
            "no UUIDs): using all %d GPUs of the agent at %s in its order",
            len(infos),
            socket_path,
        )
        return infos
    by_uuid = {info.uuid: info for info in infos}
    for uuid in uuids:
        if uuid not in by_uuid:
            raise GPUNotFoundError(
                f"GPU {uuid}, which this process sees, is not served by the Zeus agent at "
                f"{socket_path} (it serves {', '.join(by_uuid) or 'none'}); MIG devices are not "
                "served through the agent"
            )
    return [by_uuid[uuid] for uuid in uuids]


def _process_uuids(pynvml: Any) -> list[str] | None:
    """UUIDs of the GPUs this process sees, in CUDA's order; None when nothing says."""
    from zeus.device.nvml import nvml_available, nvml_gpus

    if pynvml is not None or nvml_available():
        return [gpu.uuid for gpu in nvml_gpus(pynvml=pynvml)]
    listed = [e.strip() for e in os.environ.get("NVIDIA_VISIBLE_DEVICES", "").split(",")]
    if listed and all(e.startswith("GPU-") for e in listed):
        return listed
    return None


def _forget_clients_in_child() -> None:
    """A forked child starts with no client: the parent's connection and lease are not its own."""
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_clients_in_child)
