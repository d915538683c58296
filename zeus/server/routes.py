"""The endpoints of the BSO HTTP API plus the read and admin endpoints; thin: parse, call store, answer.

Database calls block. Writes on SQLite (a local file that serialises writers anyway, each request
well under a millisecond) run inline on the event loop, a thread hand-off would cost more CPU than
the query, unless another process holds SQLite's write lock: then the write waits for it in the
thread pool instead of stalling the loop. On PostgreSQL/MySQL writes run in the thread pool. Reads
always do (a page of a big job's trials takes a while); `/health` waits at most `HEALTH_TIMEOUT_S`.
Every write goes through `Database.write`, the one place that commits or rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel
from sqlalchemy import Connection

from zeus.optimizer.batch_size.schemas import (
    MAX_JOB_ID_LEN,
    ErrorResponse,
    HealthResponse,
    JobDetail,
    JobSpecFromClient,
    JobSummary,
    PredictResponse,
    ReportResponse,
    TrainingResult,
    TrialId,
    no_edge_spaces,
    storable_text,
)
from zeus.server import reads, store
from zeus.server.db import Database, WouldBlock, ping
from zeus.server.leases import LeasePolicy
from zeus.server.metrics import ServerMetrics
from zeus.server.queries import Tx
from zeus.server.store import Clock


def _lenient_router() -> APIRouter:
    """Existing clients send JSON bodies without a Content-Type header: accept them."""
    try:
        return APIRouter(strict_content_type=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:  # FastAPI before the option existed parses such bodies as JSON anyway
        return APIRouter()


router = _lenient_router()
T = TypeVar("T")

JobIdQuery = Annotated[
    str,
    Query(min_length=1, max_length=MAX_JOB_ID_LEN, description="The job's id."),
    AfterValidator(storable_text),
    AfterValidator(no_edge_spaces),
]
JobIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_JOB_ID_LEN, description="The job's id."),
    AfterValidator(storable_text),
    AfterValidator(no_edge_spaces),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 503)
}
HEALTH_TIMEOUT_S = 2.0  # under the usual probe timeouts (Kubernetes: 1 s default, 3 s in deploy/)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _write(request: Request, operation: Callable[[Tx], T]) -> T:
    db = _db(request)
    if db.inline:
        try:
            return db.write(operation, on_loop=True)
        except WouldBlock:
            pass  # another process holds SQLite's write lock: wait for it off the loop
    return await run_in_threadpool(db.write, operation)


async def _read(request: Request, operation: Callable[[Connection], T]) -> T:
    return await run_in_threadpool(_db(request).read, operation)


def _json(model: BaseModel, status_code: int = 200) -> Response:
    """The model as JSON, serialised once (FastAPI would validate it against the model again)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")


def _clock(request: Request) -> Clock:
    leases: LeasePolicy = request.app.state.leases
    return Clock(now=request.app.state.clock(), leases=leases)


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobSpecFromClient,
    responses={200: {"model": JobSpecFromClient, "description": "Already registered"}, **ERRORS},
)
async def register_job(spec: JobSpecFromClient, request: Request) -> Any:
    """Register a recurring job (201), or confirm the same registration again (200)."""
    clock = _clock(request)
    echoed, created = await _write(request, lambda tx: store.register_job(tx, spec, clock))
    return _json(echoed, 201 if created else 200)


@router.get("/jobs/batch_size", response_model=PredictResponse, responses=ERRORS)
async def predict(job_id: JobIdQuery, request: Request) -> Any:
    """Start a new trial of the job and get its batch size."""
    clock = _clock(request)
    return _json(await _write(request, lambda tx: store.predict(tx, job_id, clock)))


@router.post("/report", response_model=ReportResponse, responses=ERRORS)
async def report(result: TrainingResult, request: Request) -> Any:
    """Report a trial's cumulative time, energy and metric after an epoch (422 when the time or
    energy is zero or impossible)."""
    clock = _clock(request)
    return _json(await _write(request, lambda tx: store.report(tx, result, clock)))


@router.patch("/trials", response_model=None, responses=ERRORS)
async def end_trial(trial: TrialId, request: Request) -> None:
    """End a still-running trial as failed (idempotent)."""
    clock = _clock(request)
    await _write(request, lambda tx: store.end_trial(tx, trial, clock))


@router.delete("/jobs", response_model=None, responses=ERRORS)
async def delete_job(job_id: JobIdQuery, request: Request) -> None:
    """Remove the job and all its trials."""
    await _write(request, lambda tx: store.delete_job(tx, job_id))


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(request: Request) -> Any:
    """Liveness, and whether the database answers: ``ok``, ``stalled`` (requests time out waiting
    for it, or it did not answer within 2 s) or ``unreachable``."""
    db = _db(request)
    state = "stalled" if db.stalled else await _ping(db)
    if state != "ok":
        return JSONResponse({"status": "degraded", "database": state}, status_code=503)
    return HealthResponse(status="ok", database="ok")


async def _ping(db: Database) -> str:
    try:
        with anyio.fail_after(HEALTH_TIMEOUT_S):
            # abandon_on_cancel: answer in time even when the ping thread waits for a connection
            await anyio.to_thread.run_sync(db.read, ping, abandon_on_cancel=True)
    except TimeoutError:
        return "stalled"
    except Exception:
        return "unreachable"
    return "ok"


@router.get("/jobs", response_model=list[JobSummary], responses=ERRORS)
async def list_jobs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> list[JobSummary]:
    """Registered jobs, oldest first."""
    return await _read(request, lambda conn: reads.list_jobs(conn, limit, offset))


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    server_metrics: ServerMetrics = request.app.state.metrics
    body = await run_in_threadpool(server_metrics.render)  # queries the database
    return Response(body, media_type="text/plain; version=0.0.4")


@router.post("/admin/jobs/reset", response_model=JobSummary, responses=ERRORS)
async def reset_job(job_id: JobIdQuery, request: Request) -> Any:
    """Forget what the job learned (costs, minimum cost, pruning); its trials stay as history.

    Needs the token (or, on a server without one, a client on the server's host)."""
    clock = _clock(request)
    return _json(await _write(request, lambda tx: store.reset_job(tx, job_id, clock)))


@router.get("/jobs/{job_id:path}", response_model=JobDetail, responses=ERRORS)
async def job_detail(
    job_id: JobIdPath,
    request: Request,
    trials_after: Annotated[int, Query(ge=0, le=2**62, description="Trials numbered above.")] = 0,
    trials_limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
) -> JobDetail:
    """A job's spec, stage, best cost so far and one page of its trials, oldest first."""
    return await _read(
        request, lambda conn: reads.job_detail(conn, job_id, trials_after, trials_limit)
    )
