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

import logging
import os
import time
from typing import Any
from urllib.parse import urlencode

from zeus.agent.schemas import GPUInfo, PowerTimeline, Readings
from zeus.agent.settings import DEFAULT_SOCKET
from zeus.device.agent_client import AgentClient, client_for, disconnect
from zeus.device.base import GPUCapabilities, Thermals, check_power_limit
from zeus.errors import GPUNotFoundError, NotSupportedError, ZeusConfigError

__all__ = ["AgentGPU", "agent_gpus", "client_for", "disconnect", "open_gpus"]

logger = logging.getLogger(__name__)


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
    def board_id(self) -> str:
        """The GPU's own UUID: the agent serves whole boards only (no MIG instances)."""
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

    def thermals(self) -> Thermals:
        raise NotSupportedError(f"{self!r}: the agent does not serve temperatures yet")

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
        check_power_limit(
            watts, self.min_power_limit_w, self.max_power_limit_w, f"{self.name} GPU {self._index}"
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
        offset_s = self._client.clock_offset_s(self.uuid)
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
    from zeus.device import nvml

    if pynvml is not None or nvml.available():
        return [gpu.uuid for gpu in nvml.nvml_gpus(pynvml=pynvml)]
    listed = [e.strip() for e in os.environ.get("NVIDIA_VISIBLE_DEVICES", "").split(",")]
    if listed and all(e.startswith("GPU-") for e in listed):
        return listed
    return None
