"""The batch size optimizer (BSO) client that a training script of a recurring job runs.

Each launch of a recurring job is one *trial*: the client registers the job (idempotent), asks the
server for this trial's batch size, reports cumulative time and energy after every validation, and
stops when the server says so. The wire format is the server's (`zeus.optimizer.batch_size.schemas`;
endpoints in docs/bso-server.md).

If the process dies before the server ended the trial (exception, SIGTERM/SIGINT, exit), the client
ends the trial as failed, so the server does not wait for it until its lease expires.

Under ``torch.distributed`` only rank 0 asks for the batch size (see `broadcast_batch_size`) and
`BatchSizeOptimizer.on_evaluate` is a collective: energy is summed over ranks, rank 0 reports, and
the server's decision is broadcast so every rank stops at the same epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from zeus.callback import Callback
from zeus.errors import ZeusConfigError, ZeusError, ZeusServerError, check_range
from zeus.optimizer.batch_size import schemas
from zeus.optimizer.batch_size._client_guard import FailureGuard
from zeus.optimizer.batch_size._client_http import BSOHttp
from zeus.validation import config_error, problems

if TYPE_CHECKING:
    from zeus.monitor import ZeusMonitor

logger = logging.getLogger(__name__)

_WINDOW = "zeus.bso.trial"
_GPU_PLACEHOLDERS = {"max_power": 1.0, "number_of_gpus": 1, "gpu_model": "unknown"}
"""Stand-ins for GPU facts not given yet (`JobSpec.resolved` fills them from the monitor)."""


class ZeusBSOEarlyStop(ZeusError):
    """The server stopped this trial before the target metric was reached (cost too high or
    ``max_epochs`` exhausted). The launcher should relaunch the job: the next trial gets another
    batch size."""

    def __init__(self, message: str, *, job_id: str, batch_size: int, trial_number: int) -> None:
        super().__init__(
            f"trial {trial_number} of job {job_id!r} (batch size {batch_size}) was stopped "
            f"without reaching the target metric: {message}"
        )
        self.job_id = job_id
        self.batch_size = batch_size
        self.trial_number = trial_number


@dataclass(frozen=True)
class JobSpec:
    """What the server needs to know about a recurring job (``JobSpecFromClient`` on the wire).

    ``job_id`` defaults to env ``ZEUS_JOB_ID`` (so every launch of the job is one recurring job);
    when neither is set the server generates ``{job_id_prefix}-{8 hex}`` (a one-off job).
    ``max_power`` (W), ``number_of_gpus`` and ``gpu_model`` default to what the monitor's GPUs say.
    """

    job_id_prefix: str
    batch_sizes: tuple[int, ...]
    default_batch_size: int
    job_id: str | None = None
    eta_knob: float = 0.5
    beta_knob: float | None = 2.0
    target_metric: float = 0.5
    higher_is_better_metric: bool = True
    max_epochs: int = 100
    num_pruning_rounds: int = 2
    window_size: int = 0
    mab_prior_mean: float = 0.0
    mab_prior_precision: float = 0.0
    mab_num_explorations: int = 2
    mab_seed: int | None = None
    max_power: float | None = None
    number_of_gpus: int | None = None
    gpu_model: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
        from_env = self.job_id is None and bool(os.environ.get("ZEUS_JOB_ID"))
        if from_env:
            object.__setattr__(self, "job_id", os.environ["ZEUS_JOB_ID"])
        self._validate(from_env)

    def _validate(self, job_id_from_env: bool) -> None:
        """The server's own rules (`schemas.JobSpecFromClient`), so that a bad spec fails in the
        training script before any request; GPU facts left to the monitor are checked later."""
        body = self.to_wire()
        for name, placeholder in _GPU_PLACEHOLDERS.items():
            if body[name] is None:
                body[name] = placeholder
        try:
            schemas.JobSpecFromClient.model_validate(body)
        except ValidationError as e:
            found = problems(e, schemas.JobSpecFromClient)
            if job_id_from_env:
                found = [f"{p} (job_id comes from ZEUS_JOB_ID when not given)" for p in found]
            raise config_error("JobSpec", found, sep=".") from None

    def resolved(self, monitor: ZeusMonitor, world_size: int = 1) -> JobSpec:
        """Fill ``max_power``, ``number_of_gpus`` and ``gpu_model`` from the monitor's GPUs.

        Each of ``world_size`` ranks is assumed to monitor as many GPUs as this one.
        """
        gpus = list(monitor.gpus)
        if not gpus and None in (self.max_power, self.number_of_gpus, self.gpu_model):
            raise ZeusConfigError(
                "JobSpec.max_power, number_of_gpus and gpu_model must be given when the monitor "
                "has no GPUs (set ZEUS_GPU=replay:<profile> to use a replay GPU)"
            )
        number_of_gpus = self.number_of_gpus or len(gpus) * world_size
        max_power = self.max_power
        if max_power is None:
            max_power = float(max(gpu.max_power_limit_w for gpu in gpus) * number_of_gpus)
        gpu_model = self.gpu_model or gpus[0].name
        return dataclasses.replace(
            self, max_power=max_power, number_of_gpus=number_of_gpus, gpu_model=gpu_model
        )

    def to_wire(self) -> dict[str, Any]:
        """The ``JobSpecFromClient`` JSON body."""
        body = dataclasses.asdict(self)
        body["batch_sizes"] = list(self.batch_sizes)
        return body

    def to_request(self) -> dict[str, Any]:
        """The body checked against the shared wire model (resolve GPU facts first)."""
        try:
            model = schemas.JobSpecFromClient.model_validate(self.to_wire())
        except ValidationError as e:
            raise config_error("JobSpec", problems(e, schemas.JobSpecFromClient), sep=".") from None
        return model.model_dump(mode="json")


def _distributed() -> Any | None:
    """``torch.distributed`` when this process is one of several ranks; never imports torch."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist
    return None


class BatchSizeOptimizer(Callback):
    """Gets this launch's batch size from the BSO server and reports each epoch's result.

    ```python
    bso = BatchSizeOptimizer(monitor, "http://bso:8000", JobSpec("mnist", (32, 64, 128), 64))
    batch_size = bso.get_batch_size()
    bso.on_train_begin()
    for epoch in range(max_epochs):
        train_one_epoch(batch_size)
        bso.on_evaluate(validate())      # raises ZeusBSOEarlyStop when stopped without converging
        if bso.training_finished:
            break
    ```
    """

    def __init__(
        self,
        monitor: ZeusMonitor,
        server_url: str,
        job: JobSpec,
        rank: int = 0,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        check_range("rank", rank, ge=0)
        self.monitor = monitor
        self.job = job
        self.rank = rank
        self._http = BSOHttp(
            server_url,
            token=token if token is not None else os.environ.get("ZEUS_BSO_TOKEN"),
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )
        self._job_id: str | None = None
        self._batch_size: int | None = None
        self._trial_number: int | None = None
        self._current_epoch = 0
        self._time_s = 0.0
        self._energy_j = 0.0
        self._window_open = False
        self._finished = False
        self._converged = False
        self._ended_on_server = False
        self._guard = FailureGuard(self._end_trial_as_failed)

    # -- public state -------------------------------------------------------------------------

    @property
    def job_id(self) -> str | None:
        """The job id the server knows this job by (set once registered)."""
        return self._job_id

    @property
    def current_batch_size(self) -> int | None:
        """This trial's batch size; None before `get_batch_size`."""
        return self._batch_size

    @property
    def trial_number(self) -> int | None:
        """This trial's number within the job; None before `get_batch_size`."""
        return self._trial_number

    @property
    def training_finished(self) -> bool:
        """True once the server answered ``stop_train``."""
        return self._finished

    @property
    def converged(self) -> bool:
        """True when the trial ended by reaching the target metric within the cost budget."""
        return self._converged

    # -- trial lifecycle ----------------------------------------------------------------------

    def register_job(self) -> str:
        """Register the job (the same spec again is fine) and return its id."""
        if self._job_id is None:
            spec = self.job.resolved(self.monitor, self._world_size())
            echoed = self._http.request("POST", "/jobs", json=spec.to_request())
            self._job_id = _parse(schemas.JobSpec, echoed).job_id
            if self._job_id is None:
                raise ZeusServerError("BSO server registered the job without a job_id")
            logger.info("BSO job %r registered at %s", self._job_id, self._http.base_url)
        return self._job_id

    def get_batch_size(self) -> int:
        """Start this launch's trial and return its batch size (the same one on later calls)."""
        if self._batch_size is not None:
            return self._batch_size
        if self.rank != 0:
            raise ZeusConfigError(
                f"rank must be 0 to ask the server for a batch size, got {self.rank}; "
                "other ranks get it from broadcast_batch_size(bso)"
            )
        job_id = self.register_job()
        raw = self._http.request("GET", "/jobs/batch_size", params={"job_id": job_id})
        answer = _parse(schemas.PredictResponse, raw)
        self.adopt_trial(answer.batch_size, answer.trial_number, answer.job_id)
        return answer.batch_size

    def adopt_trial(self, batch_size: int, trial_number: int, job_id: str | None = None) -> None:
        """Join a trial started elsewhere (rank 0's, received by broadcast)."""
        self._job_id = job_id or self._job_id or self.job.job_id
        if self._job_id is None:
            raise ZeusConfigError("JobSpec.job_id (or env ZEUS_JOB_ID) is needed on ranks > 0")
        self._batch_size, self._trial_number = batch_size, trial_number
        logger.info("BSO trial %d of job %r: batch size %d", trial_number, self._job_id, batch_size)
        self._guard.install()

    def on_train_begin(self) -> None:
        """Start measuring the trial (cumulative time and energy are reported from here)."""
        if self._trial_number is None:
            raise ZeusConfigError("call get_batch_size() (or broadcast_batch_size) before training")
        self.monitor.begin_window(_WINDOW)
        self._window_open = True

    def on_evaluate(self, metric: float) -> None:
        """Report this epoch's metric with cumulative time/energy; collective under DDP."""
        if not self._window_open:
            raise ZeusConfigError("on_evaluate() needs on_train_begin() first")
        if not math.isfinite(metric):
            raise ZeusConfigError(f"metric must be a finite number, got {metric!r}")
        measurement = self.monitor.end_window(_WINDOW)
        self._window_open = False
        self._time_s += measurement.time_s
        self._energy_j += measurement.total_energy_j
        self._current_epoch += 1
        try:
            stop, converged, message = self._report(float(metric))
        except Exception:
            self.on_train_begin()  # keep measuring: a later report carries this epoch too
            raise
        if not stop:
            self.on_train_begin()
            return
        self._finished, self._converged, self._ended_on_server = True, converged, True
        self._guard.uninstall()
        assert self._job_id is not None and self._batch_size is not None
        assert self._trial_number is not None
        if not converged:
            raise ZeusBSOEarlyStop(
                message,
                job_id=self._job_id,
                batch_size=self._batch_size,
                trial_number=self._trial_number,
            )
        logger.info("BSO trial %d converged: %s", self._trial_number, message)

    def on_train_end(self) -> None:
        """Drop the measurement window if training ended on its own (nothing reports it)."""
        if self._window_open:
            self.monitor.cancel_window(_WINDOW)
            self._window_open = False

    def end_trial_as_failed(self) -> None:
        """Tell the server this trial failed (idempotent; nothing to do once the trial ended)."""
        self._end_trial_as_failed()
        self._guard.uninstall()

    def close(self) -> None:
        """Release the connection. While the trial is still running, the failure handlers stay
        armed (they reconnect to end it as failed if the process then dies)."""
        self._http.close()
        if self._ended_on_server or self._trial_number is None:
            self._guard.uninstall()

    def state_dict(self) -> dict[str, Any]:
        """A JSON snapshot of the trial: identity and cumulative measurement so far."""
        return {
            "job_id": self._job_id,
            "batch_size": self._batch_size,
            "trial_number": self._trial_number,
            "current_epoch": self._current_epoch,
            "time_s": self._time_s,
            "energy_j": self._energy_j,
        }

    # -- internals ----------------------------------------------------------------------------

    def _world_size(self) -> int:
        dist = _distributed()
        return int(dist.get_world_size()) if dist is not None else 1

    def _report(self, metric: float) -> tuple[bool, bool, str]:
        dist = _distributed()
        if dist is None:
            return self._post_report(metric, self._energy_j)
        return _report_collectively(self, dist, metric)

    def _post_report(self, metric: float, energy_j: float) -> tuple[bool, bool, str]:
        try:
            body = schemas.TrainingResult.model_validate(
                {
                    "job_id": self._job_id,
                    "batch_size": self._batch_size,
                    "trial_number": self._trial_number,
                    "time": self._time_s,
                    "energy": energy_j,
                    "metric": metric,
                    "current_epoch": self._current_epoch,
                }
            )
        except ValidationError as e:
            first = e.errors()[0]
            raise ZeusConfigError(f"report field {first['loc'][0]}: {first['msg']}") from None
        raw = self._http.request("POST", "/report", json=body.model_dump(mode="json"))
        answer = _parse(schemas.ReportResponse, raw)
        return answer.stop_train, answer.converged, answer.message

    def _end_trial_as_failed(self) -> None:
        if self._ended_on_server or self._trial_number is None:
            return
        self._ended_on_server = True
        body = {
            "job_id": self._job_id,
            "batch_size": self._batch_size,
            "trial_number": self._trial_number,
        }
        try:
            self._http.request("PATCH", "/trials", json=body, max_retries=1)
            logger.warning(
                "BSO trial %d of job %r ended as failed", self._trial_number, self._job_id
            )
        except ZeusError as e:
            logger.error("could not end BSO trial %d as failed: %s", self._trial_number, e)


def _report_collectively(
    bso: BatchSizeOptimizer, dist: Any, metric: float
) -> tuple[bool, bool, str]:
    """Sum energy over ranks, report from rank 0, broadcast the decision (-1: rank 0 failed)."""
    import torch

    energy = torch.tensor([bso._energy_j], dtype=torch.float64)
    dist.all_reduce(energy, op=dist.ReduceOp.SUM)
    decision = torch.zeros(2, dtype=torch.int64)
    message = ""
    error: ZeusError | None = None
    if dist.get_rank() == 0:
        try:
            stop, converged, message = bso._post_report(metric, float(energy.item()))
            decision[0], decision[1] = int(stop), int(converged)
        except ZeusError as e:
            decision[0], error = -1, e
    dist.broadcast(decision, src=0)
    if error is not None:
        raise error
    if int(decision[0]) < 0:
        raise ZeusServerError("rank 0 could not report this epoch to the BSO server")
    return bool(decision[0]), bool(decision[1]), message or "decided by rank 0"


def broadcast_batch_size(bso: BatchSizeOptimizer) -> int:
    """Rank 0 asks the server; every rank gets ``(batch_size, trial_number)`` and joins the trial.

    Without an initialised multi-rank ``torch.distributed`` this is ``bso.get_batch_size()``.
    """
    dist = _distributed()
    if dist is None:
        return bso.get_batch_size()
    import torch

    pair = torch.zeros(2, dtype=torch.int64)
    if dist.get_rank() == 0:
        pair[0] = bso.get_batch_size()
        pair[1] = bso.trial_number if bso.trial_number is not None else -1
    dist.broadcast(pair, src=0)
    if dist.get_rank() != 0:
        bso.adopt_trial(int(pair[0]), int(pair[1]))
    return int(pair[0])


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], body: Any) -> _Model:
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise ZeusServerError(
            f"unexpected BSO server answer {body!r}: {e.errors()[0]['msg']}"
        ) from None
