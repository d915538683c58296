"""The agent's wire format: what its HTTP API takes and answers. The server validates requests with
these models; the `agent` device backend (`zeus.device.agent`) parses answers with them. Only
pydantic: a training process imports this without the agent's server stack."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

GPURef = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:+-]+$")]
"""A GPU by its index on the node (``"0"``) or its UUID."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaseRequest(_Request):
    gpus: list[GPURef] = Field(min_length=1, max_length=64, description="Indices or UUIDs.")
    job_id: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f]+$",
        description="Recorded and audited.",
    )


class PowerLimitRequest(_Request):
    watts: int = Field(ge=1, le=100_000, description="New power limit, whole watts.")


class StepRequest(_Request):
    batch_size: int | None = Field(default=None, ge=1, le=1 << 30)
    forward_only: bool = False


class LeaseInfo(BaseModel):
    id: str
    job_id: str
    pid: int
    uid: int
    since: float = Field(description="Unix time the lease began.")
    gpus: list[str] = Field(description="UUIDs of the leased GPUs.")
    original_w: dict[str, int] = Field(description="What ending the lease restores, per UUID.")


class GPUInfo(BaseModel):
    index: int = Field(description="Index on the node (the agent's order).")
    uuid: str
    name: str
    min_power_limit_w: int
    max_power_limit_w: int
    default_power_limit_w: int
    power_limit_w: int
    energy_counter: bool
    virtual_time: bool
    simulated: bool
    lease: LeaseInfo | None
    may_set: bool = Field(description="Whether the caller may change this GPU's limit now.")
    may_set_reason: str | None = Field(description="Why not, when it may not.")


class Readings(BaseModel):
    agent: str = Field(description="Id of this agent process: it changes when the agent restarts.")
    power_limit_w: int
    power_w: float
    energy_j: float | None = Field(description="Cumulative; null without an energy counter.")
    clock_s: float | None = Field(description="The device's virtual clock; null on wall time.")


class PowerTimeline(BaseModel):
    points: list[tuple[float, float]] = Field(description="(clock_s, W) where power changed.")


class CallerInfo(BaseModel):
    transport: str = Field(description="'unix' (peer credentials known) or 'remote'.")
    pid: int | None
    uid: int | None
    may_lease: bool
    reason: str | None
    lease: LeaseInfo | None


class Health(BaseModel):
    status: str
    agent: str
    backend: str
    gpus: int
    leases: int


class ErrorBody(BaseModel):
    message: str
    error: str
