"""The agent's HTTP API. Reads are open to every local caller (and to TCP callers with the token);
changes need a lease, and leases need a local caller on the allow-list (`zeus.agent.leases`).

Handlers are coroutines that call the devices directly: every device call runs on the event loop's
one thread (`zeus.agent.devices`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from zeus.agent.devices import device_errors
from zeus.agent.errors import InvalidRequest, MetricsOff
from zeus.agent.leases import Lease, LeaseBook
from zeus.agent.peer import Peer
from zeus.agent.schemas import (
    CallerInfo,
    ErrorBody,
    GPUInfo,
    GPURef,
    Health,
    LeaseInfo,
    LeaseRequest,
    PowerLimitRequest,
    PowerTimeline,
    Readings,
    StepRequest,
)
from zeus.device.base import GPU

PEER_KEY = "zeus.peer"
"""Where the server puts the caller's credentials in the ASGI scope's ``extensions``."""

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 502, 503)}
router = APIRouter(responses=_ERRORS)  # type: ignore[arg-type]


# Dependencies are coroutines: FastAPI would run plain functions in its thread pool, which costs
# more than the whole request otherwise.
async def caller(request: Request) -> Peer | None:
    """The calling process (UNIX socket), or None for a remote (TCP) or in-process caller."""
    peer: Peer | None = request.scope.get("extensions", {}).get(PEER_KEY)
    return peer


async def book(request: Request) -> LeaseBook:
    lease_book: LeaseBook = request.app.state.book
    return lease_book


Book = Annotated[LeaseBook, Depends(book)]
Caller = Annotated[Peer | None, Depends(caller)]
Ref = Annotated[GPURef, Path(description="Index on the node or UUID.")]


def _gpu(leases: LeaseBook, ref: str) -> GPU:
    return leases.devices.find(ref)


def lease_info(lease: Lease) -> LeaseInfo:
    return LeaseInfo(
        id=lease.id,
        job_id=lease.job_id,
        pid=lease.holder.pid,
        uid=lease.uid,
        since=lease.since,
        gpus=list(lease.original_w),
        original_w=dict(lease.original_w),
    )


def gpu_info(leases: LeaseBook, gpu: GPU, peer: Peer | None) -> GPUInfo:
    lease = leases.lease_of(gpu)
    reason = leases.refusal(peer, gpu)
    with device_errors(f"reading {leases.devices.describe(gpu)}"):
        caps = gpu.capabilities
        return GPUInfo(
            index=leases.devices.index_of(gpu),
            uuid=gpu.uuid,
            name=gpu.name,
            min_power_limit_w=gpu.min_power_limit_w,
            max_power_limit_w=gpu.max_power_limit_w,
            default_power_limit_w=gpu.default_power_limit_w,
            power_limit_w=gpu.get_power_limit_w(),
            energy_counter=caps.energy_counter,
            virtual_time=caps.virtual_time,
            simulated=caps.simulated,
            lease=None if lease is None else lease_info(lease),
            may_set=reason is None,
            may_set_reason=reason,
        )


def readings(request: Request, gpu: GPU) -> Readings:
    with device_errors(f"reading {gpu.uuid}"):
        caps = gpu.capabilities
        return Readings(
            agent=request.app.state.instance,
            power_limit_w=gpu.get_power_limit_w(),
            power_w=gpu.power_w(),
            energy_j=gpu.energy_j() if caps.energy_counter else None,
            clock_s=gpu.clock_s() if caps.virtual_time else None,
        )


@router.get("/health", response_model=Health)
async def health(request: Request, leases: Book) -> Health:
    return Health(
        status="ok",
        agent=request.app.state.instance,
        backend=request.app.state.backend,
        gpus=len(leases.devices.gpus),
        leases=len(leases.leases),
    )


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text format): power, limits and energy per GPU and per lease."""
    registry = request.app.state.metrics
    if registry is None:
        raise MetricsOff("metrics are off: start the agent with metrics_port (--metrics-port)")
    from prometheus_client import CONTENT_TYPE_LATEST

    from zeus.agent.metrics import render

    return Response(render(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/caller", response_model=CallerInfo)
async def whoami(leases: Book, peer: Caller) -> CallerInfo:
    """Who the agent thinks the caller is, and whether it may lease GPUs."""
    reason = leases.access.refusal(peer)
    lease = leases.lease_held_by(None if peer is None else peer.process)
    return CallerInfo(
        transport="remote" if peer is None else "unix",
        pid=None if peer is None else peer.pid,
        uid=None if peer is None else peer.uid,
        may_lease=reason is None,
        reason=reason,
        lease=None if lease is None else lease_info(lease),
    )


@router.get("/gpus", response_model=list[GPUInfo])
async def list_gpus(leases: Book, peer: Caller) -> list[GPUInfo]:
    return [gpu_info(leases, gpu, peer) for gpu in leases.devices.gpus]


@router.get("/gpus/{gpu}", response_model=GPUInfo)
async def get_gpu(gpu: Ref, leases: Book, peer: Caller) -> GPUInfo:
    return gpu_info(leases, _gpu(leases, gpu), peer)


@router.get("/gpus/{gpu}/readings", response_model=Readings)
async def get_readings(gpu: Ref, request: Request, leases: Book) -> Readings:
    return readings(request, _gpu(leases, gpu))


@router.get("/gpus/{gpu}/power-timeline", response_model=PowerTimeline)
async def power_timeline(
    gpu: Ref,
    leases: Book,
    start_s: Annotated[float, Query(allow_inf_nan=False)],
    end_s: Annotated[float, Query(allow_inf_nan=False)],
) -> PowerTimeline:
    """Power on a virtual-time GPU's clock where it changed in [start_s, end_s]."""
    if end_s < start_s:
        raise InvalidRequest(f"end_s ({end_s}) must be >= start_s ({start_s})")
    device = _gpu(leases, gpu)
    with device_errors(f"reading {device.uuid}'s power timeline"):
        return PowerTimeline(points=device.power_timeline_w(start_s, end_s))


@router.put("/gpus/{gpu}/power-limit", response_model=Readings)
async def set_power_limit(
    gpu: Ref, body: PowerLimitRequest, request: Request, leases: Book, peer: Caller
) -> Readings:
    """Set the limit of a GPU leased by the caller."""
    device = _gpu(leases, gpu)
    leases.set_limit(peer, device, body.watts)
    return readings(request, device)


@router.delete("/gpus/{gpu}/power-limit", response_model=Readings)
async def reset_power_limit(gpu: Ref, request: Request, leases: Book, peer: Caller) -> Readings:
    """Set the limit of a GPU leased by the caller back to the GPU's default."""
    device = _gpu(leases, gpu)
    leases.set_limit(peer, device, device.default_power_limit_w, "reset")
    return readings(request, device)


@router.post("/gpus/{gpu}/steps", response_model=Readings)
async def mark_step(
    gpu: Ref, body: StepRequest, request: Request, leases: Book, peer: Caller
) -> Readings:
    """Mark a training step on a virtual-time (replay) GPU leased by the caller."""
    device = _gpu(leases, gpu)
    leases.step(peer, device, body.batch_size, body.forward_only)
    return readings(request, device)


@router.post("/leases", response_model=LeaseInfo, status_code=201)
async def acquire(body: LeaseRequest, leases: Book, peer: Caller) -> LeaseInfo:
    """Lease GPUs to the calling process (its lease grows if it holds one already)."""
    return lease_info(leases.acquire(peer, list(body.gpus), body.job_id))


@router.get("/leases", response_model=list[LeaseInfo])
async def list_leases(leases: Book) -> list[LeaseInfo]:
    return [lease_info(lease) for lease in leases.leases.values()]


@router.delete("/leases/{lease_id}", response_model=LeaseInfo)
async def release(
    lease_id: Annotated[str, Path(max_length=64)], leases: Book, peer: Caller
) -> LeaseInfo:
    """End a lease now; its GPUs go back to the limits they had when it began."""
    return lease_info(leases.release(peer, lease_id))
