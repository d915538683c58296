"""Refusals of the node agent. One exception handler (`zeus.agent.app`) answers each with its status
and a body ``{"message": ..., "error": <code>}``; the `agent` device backend maps the code back to
Zeus's errors (`zeus.device.agent`)."""

from __future__ import annotations

from zeus.errors import ZeusError


class AgentError(ZeusError):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(AgentError):
    """A value outside its allowed range (e.g. a power limit)."""


class NotSupported(AgentError):
    """The device cannot do this (no energy counter, a step on a wall-clock device)."""

    code = "not_supported"


class UnknownGPU(AgentError):
    status_code = 404
    code = "unknown_gpu"


class UnknownLease(AgentError):
    status_code = 404
    code = "unknown_lease"


class MetricsOff(AgentError):
    """``GET /metrics`` on an agent started without ``metrics_port``."""

    status_code = 404
    code = "not_found"


class Unauthorized(AgentError):
    """TCP without the bearer token."""

    status_code = 401
    code = "unauthorized"


class Forbidden(AgentError):
    """The caller may not do this: not on the allow-list, not local, not the lease holder."""

    status_code = 403
    code = "forbidden"


class NotLeased(Forbidden):
    """A change to a GPU the caller holds no lease on."""

    code = "not_leased"


class LeaseConflict(AgentError):
    """Another job holds the GPU."""

    status_code = 409
    code = "lease_conflict"


class DeviceFailure(AgentError):
    """The driver failed."""

    status_code = 502
    code = "device_error"


class AgentNotPermitted(DeviceFailure):
    """The driver refused the agent itself (it runs without root or CAP_SYS_ADMIN): jobs observe
    and recommend, as they do without permission of their own."""

    status_code = 503
    code = "agent_not_permitted"
