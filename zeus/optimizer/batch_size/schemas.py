"""Wire models of the batch size optimizer (BSO) HTTP API, shared by the server and the client.

The format is the one existing Zeus training scripts speak (endpoints in docs/bso-server.md).
Validation rejects at registration whatever would break the job later: integers that overflow the
database's 64-bit columns, names longer than its columns, non-finite floats, duplicate or
non-positive batch sizes. Validators raise `ZeusConfigError` (a `ValueError`), so pydantic reports them as 422 details.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from zeus.errors import ZeusConfigError

# Column sizes of the server's database; the schemas enforce them so an insert never fails.
MAX_JOB_ID_LEN = 256
SUFFIX_LEN = 9  # "-" + 8 hex chars appended to the prefix when the server generates the job id
MAX_PREFIX_LEN = MAX_JOB_ID_LEN - SUFFIX_LEN
MAX_GPU_MODEL_LEN = 256
MAX_MESSAGE_LEN = 1024
INT64_MAX = 2**63 - 1
# Bounds that keep every cost finite: cost <= MAX_POWER_W * MAX_MEASURE (+ MAX_MEASURE).
MAX_POWER_W = 1e12
MAX_MEASURE = 1e18

GPU_FIELDS = ("max_power", "number_of_gpus", "gpu_model")


def storable_text(value: str) -> str:
    """Reject text a database cannot store: NUL/control characters and unencodable surrogates."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ZeusConfigError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ZeusConfigError("must be valid UTF-8 text") from None
    return value


def no_edge_spaces(value: str) -> str:
    """Ids never start or end with whitespace (MySQL would ignore trailing spaces in comparisons)."""
    if value != value.strip():
        raise ZeusConfigError("must not start or end with whitespace")
    return value


StorableText = Annotated[str, AfterValidator(storable_text)]
IdText = Annotated[StorableText, AfterValidator(no_edge_spaces)]
JobId = Annotated[IdText, Field(min_length=1, max_length=MAX_JOB_ID_LEN)]
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
PositiveInt64 = Annotated[int, Field(gt=0, le=INT64_MAX)]
NonNegInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Measure = Annotated[float, Field(ge=0.0, le=MAX_MEASURE, allow_inf_nan=False)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class JobSpec(_Wire):
    """Parameters of a recurring job, as a training script declares them (without GPU facts)."""

    job_id: JobId | None = Field(
        default=None, description="Null: the server generates `{prefix}-{8 hex chars}`."
    )
    job_id_prefix: Annotated[IdText, Field(min_length=1, max_length=MAX_PREFIX_LEN)]
    batch_sizes: Annotated[list[PositiveInt64], Field(min_length=1, max_length=10_000)]
    default_batch_size: PositiveInt64
    eta_knob: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    beta_knob: Annotated[float, Field(gt=0.0, le=1e12, allow_inf_nan=False)] | None = 2.0
    target_metric: FiniteFloat = 0.5
    higher_is_better_metric: bool = True
    max_epochs: PositiveInt64 = 100
    num_pruning_rounds: Annotated[int, Field(ge=0, le=1_000)] = 2
    window_size: NonNegInt64 = 0
    mab_prior_mean: Annotated[float, Field(ge=-1e30, le=1e30, allow_inf_nan=False)] = 0.0
    mab_prior_precision: Annotated[float, Field(ge=0.0, le=1e30, allow_inf_nan=False)] = 0.0
    mab_num_explorations: Annotated[int, Field(ge=0, le=1_000)] = 2
    mab_seed: NonNegInt64 | None = None

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ZeusConfigError(f"batch_sizes must be distinct, got {self.batch_sizes}")
        if self.default_batch_size not in self.batch_sizes:
            raise ZeusConfigError(
                f"default_batch_size {self.default_batch_size} must be one of batch_sizes "
                f"{sorted(self.batch_sizes)}"
            )
        if self.job_id is not None and not self.job_id.startswith(self.job_id_prefix):
            raise ZeusConfigError(
                f"job_id {self.job_id!r} must start with job_id_prefix {self.job_id_prefix!r}"
            )
        self.batch_sizes = sorted(self.batch_sizes)
        return self


class JobSpecFromClient(JobSpec):
    """What `POST /jobs` receives: the job's parameters plus the GPU facts the client measured."""

    max_power: Annotated[float, Field(gt=0.0, le=MAX_POWER_W, allow_inf_nan=False)] = Field(
        description="Maximum power limit in W times the number of GPUs."
    )
    number_of_gpus: Annotated[int, Field(gt=0, le=1_000_000)]
    gpu_model: Annotated[StorableText, Field(min_length=1, max_length=MAX_GPU_MODEL_LEN)]

    def same_job_as(self, other: JobSpecFromClient) -> bool:
        """Whether two registrations describe the same job (the server then answers 200)."""
        return self.model_dump() == other.model_dump()


class TrialId(_Wire):
    """Identifies one trial (one recurrence) of a job; body of `PATCH /trials`."""

    job_id: JobId
    batch_size: PositiveInt64
    trial_number: PositiveInt64


class PredictResponse(TrialId):
    """Answer of `GET /jobs/batch_size`: the batch size of a new trial."""


class TrainingResult(TrialId):
    """One report of `POST /report`; time and energy are cumulative since the trial began."""

    time: Measure = Field(description="Seconds since the trial began.")
    energy: Measure = Field(description="Joules since the trial began.")
    metric: FiniteFloat = Field(description="Validation metric after this epoch.")
    current_epoch: PositiveInt64 = Field(description="Epochs completed (1-based).")


class ReportResponse(_Wire):
    """Answer of `POST /report`."""

    stop_train: bool
    converged: bool
    message: str


class ErrorResponse(_Wire):
    """Body of every error the server raises on purpose (422 uses FastAPI's `detail` list)."""

    message: str


class TrialInfo(_Wire):
    """One trial as `GET /jobs/{job_id}` lists it."""

    trial_number: int
    batch_size: int
    status: str = Field(description="running, succeeded, failed (early stop), or ended.")
    exploration: bool
    started_at: float = Field(description="Unix time.")
    updated_at: float
    lease_expires_at: float | None
    current_epoch: int | None
    time: float | None
    energy: float | None
    cost: float | None
    converged: bool | None
    message: str | None


class JobSummary(_Wire):
    """One job as `GET /jobs` lists it."""

    job_id: str
    stage: str = Field(description="pruning, mab, or failed (no batch size reached the target).")
    num_trials: int
    min_cost: float | None
    min_cost_batch_size: int | None
    created_at: float


class JobDetail(JobSummary):
    """`GET /jobs/{job_id}`: the spec, the stage, the best cost so far and every trial."""

    spec: JobSpecFromClient
    trials: list[TrialInfo]


class HealthResponse(_Wire):
    status: str
    database: str


def finite_or_none(value: Any) -> float | None:
    """A float for JSON output, or None when missing or not finite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
