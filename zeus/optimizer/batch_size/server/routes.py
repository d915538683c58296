"""The endpoints of ``specs/bso-http-api.md`` plus the read endpoints; thin: parse, call store, answer.

Handlers are plain functions (FastAPI runs them in its thread pool) because the database calls
block; every write goes through `Database.write`, the one place that commits or rolls back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

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
    storable_text,
)
from zeus.optimizer.batch_size.server import reads, store
from zeus.optimizer.batch_size.server.db import Database
from zeus.optimizer.batch_size.server.metrics import ServerMetrics
from zeus.optimizer.batch_size.server.settings import ServerSettings
from zeus.optimizer.batch_size.server.store import Clock


def _lenient_router() -> APIRouter:
    """Existing clients send JSON bodies without a Content-Type header: accept them."""
    try:
        return APIRouter(strict_content_type=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:  # FastAPI before the option existed parses such bodies as JSON anyway
        return APIRouter()


router = _lenient_router()

JobIdQuery = Annotated[
    str,
    Query(min_length=1, max_length=MAX_JOB_ID_LEN, description="The job's id."),
    AfterValidator(storable_text),
]
JobIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_JOB_ID_LEN, description="The job's id."),
    AfterValidator(storable_text),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 503)
}


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _clock(request: Request) -> Clock:
    settings: ServerSettings = request.app.state.settings
    return Clock(now=request.app.state.clock(), lease_s=settings.lease_seconds)


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobSpecFromClient,
    responses={200: {"model": JobSpecFromClient, "description": "Already registered"}, **ERRORS},
)
def register_job(spec: JobSpecFromClient, request: Request, response: Response) -> Any:
    """Register a recurring job (201), or confirm the same registration again (200)."""
    clock = _clock(request)
    echoed, created = _db(request).write(lambda tx: store.register_job(tx, spec, clock))
    response.status_code = 201 if created else 200
    return echoed


@router.get("/jobs/batch_size", response_model=PredictResponse, responses=ERRORS)
def predict(job_id: JobIdQuery, request: Request) -> PredictResponse:
    """Start a new trial of the job and get its batch size."""
    clock = _clock(request)
    return _db(request).write(lambda tx: store.predict(tx, job_id, clock))


@router.post("/report", response_model=ReportResponse, responses=ERRORS)
def report(result: TrainingResult, request: Request) -> ReportResponse:
    """Report a trial's cumulative time, energy and metric after an epoch."""
    clock = _clock(request)
    return _db(request).write(lambda tx: store.report(tx, result, clock))


@router.patch("/trials", response_model=None, responses=ERRORS)
def end_trial(trial: TrialId, request: Request) -> None:
    """End a still-running trial as failed (idempotent)."""
    clock = _clock(request)
    _db(request).write(lambda tx: store.end_trial(tx, trial, clock))


@router.delete("/jobs", response_model=None, responses=ERRORS)
def delete_job(job_id: JobIdQuery, request: Request) -> None:
    """Remove the job and all its trials."""
    _db(request).write(lambda tx: store.delete_job(tx, job_id))


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def health(request: Request) -> Any:
    """Liveness, and whether the database answers."""
    try:
        _db(request).ping()
    except Exception:
        return JSONResponse({"status": "degraded", "database": "unreachable"}, status_code=503)
    return HealthResponse(status="ok", database="ok")


@router.get("/jobs", response_model=list[JobSummary], responses=ERRORS)
def list_jobs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> list[JobSummary]:
    """Registered jobs, oldest first."""
    return _db(request).read(lambda conn: reads.list_jobs(conn, limit, offset))


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    server_metrics: ServerMetrics = request.app.state.metrics
    return Response(server_metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/jobs/{job_id:path}", response_model=JobDetail, responses=ERRORS)
def job_detail(job_id: JobIdPath, request: Request) -> JobDetail:
    """A job's spec, stage, best cost so far and every trial."""
    return _db(request).read(lambda conn: reads.job_detail(conn, job_id))
