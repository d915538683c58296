"""`ZeusMaster`: drive a recurring training job on one machine with any batch-size policy.

Per recurrence the master asks the policy (`zeus.policy.BatchSizeOptimizer`) for a batch size, scales
the learning rate, fills the job's command template, launches it with the ``ZEUS_*`` variables in its
environment (the job's `ZeusDataLoader` picks the power limit just in time and writes a result file),
reads the result back, computes the cost (`zeus.cost`) and feeds it to the policy. A run that misses
the target or crashes is recorded as failed and retried (bounded); every run and the policy state are
saved in ``<run_dir>/series.json`` after each run, so an interrupted series resumes where it stopped.

Files in the run directory: ``series.json`` (history + policy state), ``logs/<job_id>.log`` (each run's
output), ``logs/<job_id>.result.json`` (each run's result), and whatever profiles the job writes to
``ZEUS_LOG_DIR`` (= ``logs/``; power-limit profiles are reused across recurrences there).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zeus.cost import CostModel, check_eta
from zeus.errors import ZeusConfigError, ZeusError, check_range
from zeus.job import Job
from zeus.policy.base import BatchSizeOptimizer
from zeus.policy.lr_scaling import Rule, rule_for_optimizer, scale_lr
from zeus.run.history import RecurrenceSummary, RunRecord, SeriesState, load_series, save_series
from zeus.run.launch import (
    ZeusRunEnv,
    check_executable,
    check_template,
    fill_template,
    format_lr,
    launch,
)

logger = logging.getLogger(__name__)

CRASH_PENALTY_FACTOR = 100.0
"""A crash after the first success is observed as a failure costing this many times the budget."""


class SeriesFailedError(ZeusError):
    """A recurrence could not reach the target within its tries, or the job keeps crashing.

    ``log_path`` is the log of the last run (its last lines usually say why).
    """

    def __init__(self, message: str, log_path: str) -> None:
        super().__init__(message)
        self.log_path = log_path


class SeriesMismatchError(ZeusConfigError):
    """The run directory holds a series of another job or configuration.

    ``differences`` names each field that differs, with the saved and the new value.
    """

    def __init__(self, run_dir: Path, differences: list[str]) -> None:
        super().__init__(
            f"{run_dir} holds another series ({'; '.join(differences)}); resume it unchanged or "
            "use another run directory"
        )
        self.run_dir = run_dir
        self.differences = differences


class MasterListener:
    """Receives progress events (e.g. to draw a live table). Every method does nothing by default."""

    def on_run_start(self, recurrence: int, try_number: int, batch_size: int, job_id: str) -> None:
        """A run is about to be launched."""

    def on_run_end(self, record: RunRecord) -> None:
        """A run finished (reached, failed or crashed) and was recorded."""

    def on_recurrence_end(self, summary: RecurrenceSummary) -> None:
        """A recurrence reached the target."""


class JobChoosesBatchSize(BatchSizeOptimizer):
    """For jobs that get their batch size elsewhere (e.g. from a BSO server through the client).

    `predict` only returns a placeholder (``job.default_bs``; the command template should not use
    ``{bs}``): the master records the batch size the job reports in its result file.
    """

    job_chooses_batch_size = True

    def register_job(self, job: Job, batch_sizes: list[int]) -> None:
        """Nothing to prepare."""

    def predict(self, job: Job) -> int:
        return job.default_bs

    def observe(
        self, job: Job, batch_size: int, cost: float, converged: bool | None = None
    ) -> None:
        """The job reported to its own optimizer already."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless."""


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "job"


class ZeusMaster:
    """Runs a recurring job on this machine, one recurrence after another.

    Args:
        policy: any batch-size policy; its ``state_dict()`` is saved for resuming (policies without one
            are restored by replaying their observations).
        run_dir: where the history, logs and results live; an existing series there is resumed.
        eta_knob: weight of energy in the cost (0 = time only, 1 = energy only).
        beta_knob: early-stopping factor: a run may spend at most ``beta·min_cost`` (None = unbounded).
        max_tries: failed runs allowed per recurrence before the series stops with an error.
        max_consecutive_crashes: crashes in a row (this session) before the series stops.
        profile_params: ``(warmup, measure)`` steps per power limit for the job's JIT profiling.
        use_optimal_pl: False makes the job only observe and recommend power limits.
        seed: base of each run's ``{seed}`` (run ``i`` gets ``seed + i``).
        lr_rule: learning-rate scaling rule (``"sqrt"``, ``"linear"``, ``"none"``); None = by
            ``job.optimizer`` (square root for Adam-family, linear for SGD).
        env: extra environment variables for every run (e.g. ``ZEUS_GPU``).
        echo: called with every output line of the runs (e.g. to show them on the terminal).
        listener: progress events.
    """

    def __init__(
        self,
        policy: BatchSizeOptimizer,
        run_dir: str | Path,
        *,
        eta_knob: float = 0.5,
        beta_knob: float | None = 2.0,
        max_tries: int = 10,
        max_consecutive_crashes: int = 3,
        profile_params: tuple[int, int] | None = None,
        use_optimal_pl: bool = True,
        seed: int = 0,
        lr_rule: Rule | None = None,
        env: Mapping[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
        listener: MasterListener | None = None,
    ) -> None:
        check_eta(eta_knob)
        if beta_knob is not None:
            check_range("beta_knob", beta_knob, gt=0)
        check_range("max_tries", max_tries, ge=1)
        check_range("max_consecutive_crashes", max_consecutive_crashes, ge=1)
        if profile_params is not None:
            check_range("profile_params warmup", profile_params[0], ge=0)
            check_range("profile_params measure", profile_params[1], ge=1)
        self.policy = policy
        self.run_dir = Path(run_dir).resolve()
        self.log_dir = self.run_dir / "logs"
        self.eta_knob = eta_knob
        self.beta_knob = beta_knob if beta_knob is None or math.isfinite(beta_knob) else None
        self.max_tries = max_tries
        self.max_consecutive_crashes = max_consecutive_crashes
        self.profile_params = profile_params
        self.use_optimal_pl = use_optimal_pl
        self.seed = seed
        self.lr_rule = lr_rule
        self.env = dict(env or {})
        self.echo = echo
        self.listener = listener or MasterListener()
        self.state: SeriesState | None = None

    # ---- series ----------------------------------------------------------------------------

    def run(self, job: Job, batch_sizes: list[int], num_recurrence: int) -> SeriesState:
        """Run (or resume) the series until ``num_recurrence`` recurrences reached the target.

        Ctrl-C/SIGTERM stop the current run, record it as interrupted, save, and re-raise
        ``KeyboardInterrupt``; calling ``run`` again with the same arguments resumes.
        """
        check_range("num_recurrence", num_recurrence, ge=1)
        self.check(job, batch_sizes)
        state = self._open_series(job, batch_sizes)
        self.state = state
        crashes_in_a_row = 0
        while state.completed_recurrences < num_recurrence:
            recurrence = state.completed_recurrences + 1
            tries = [
                r for r in state.runs if r.recurrence == recurrence and r.status != "interrupted"
            ]
            if len(tries) >= self.max_tries:
                raise SeriesFailedError(
                    f"recurrence {recurrence} failed {len(tries)} times (max_tries={self.max_tries}); "
                    f"last log: {tries[-1].log_path}",
                    tries[-1].log_path,
                )
            record = self._one_run(job, state, recurrence, len(tries) + 1)
            crashes_in_a_row = crashes_in_a_row + 1 if record.status == "crashed" else 0
            if crashes_in_a_row >= self.max_consecutive_crashes:
                raise SeriesFailedError(
                    f"the job crashed {crashes_in_a_row} times in a row (exit code "
                    f"{record.exit_code}); see {record.log_path}",
                    record.log_path,
                )
        return state

    def check(self, job: Job, batch_sizes: list[int]) -> None:
        """Everything `run` checks before it writes or launches anything: the job, its command, the
        batch sizes, and that ``run_dir`` holds no other series (`SeriesMismatchError`)."""
        if job.command is None:
            raise ZeusConfigError("Job.command must be set: ZeusMaster launches it")
        check_template(job.command)
        if not batch_sizes or any(b < 1 for b in batch_sizes):
            raise ZeusConfigError(f"batch_sizes must be positive integers, got {batch_sizes!r}")
        if job.default_bs not in batch_sizes:
            raise ZeusConfigError(
                f"Job.default_bs {job.default_bs} must be one of batch_sizes {sorted(batch_sizes)}"
            )
        if job.default_lr is not None and self.lr_rule is None:
            rule_for_optimizer(job.optimizer)  # fail now, not after the first run
        workdir = Path(job.workdir or ".")
        if not workdir.is_dir():
            raise ZeusConfigError(f"Job.workdir {job.workdir!r} is not a directory")
        check_executable(job.command, workdir, {**os.environ, **self.env})
        saved = load_series(self.run_dir)
        if saved is not None:
            differences = saved.differences(self._fresh_series(job, batch_sizes))
            if differences:
                raise SeriesMismatchError(self.run_dir, differences)

    def _fresh_series(self, job: Job, batch_sizes: list[int]) -> SeriesState:
        return SeriesState(
            job=job.to_dict(),
            batch_sizes=sorted(batch_sizes),
            policy_name=self.policy.name,
            eta_knob=self.eta_knob,
            beta_knob=self.beta_knob,
            seed=self.seed,
        )

    def _open_series(self, job: Job, batch_sizes: list[int]) -> SeriesState:
        """Load the series in ``run_dir`` (`check` made sure it is this one) or start a new one."""
        saved = load_series(self.run_dir)
        self.policy.register_job(job, sorted(batch_sizes))
        if saved is None:
            fresh = self._fresh_series(job, batch_sizes)
            save_series(self.run_dir, fresh)
            return fresh
        self._restore_policy(job, saved)
        logger.info(
            "Resuming %s: %d runs, %d recurrences done",
            self.run_dir,
            len(saved.runs),
            saved.completed_recurrences,
        )
        return saved

    def _restore_policy(self, job: Job, saved: SeriesState) -> None:
        if saved.policy_state is not None:
            self.policy.load_state_dict(saved.policy_state)
            return
        for run in saved.runs:  # no state_dict(): replay what the policy observed
            if run.policy_cost is not None:
                self.policy.observe(job, run.batch_size, run.policy_cost, run.reached)

    def _policy_state(self) -> dict[str, Any] | None:
        try:
            return self.policy.state_dict()
        except NotImplementedError:
            return None

    # ---- one run ---------------------------------------------------------------------------

    def _one_run(self, job: Job, state: SeriesState, recurrence: int, try_number: int) -> RunRecord:
        before = self._policy_state()
        record = self._plan_run(job, state, recurrence, try_number)
        run_env = ZeusRunEnv(
            target_metric=job.target_metric,
            log_dir=self.log_dir,
            job_id=record.job_id,
            cost_thresh=record.cost_thresh,
            eta_knob=self.eta_knob,
            profile_params=self.profile_params,
            use_optimal_pl=self.use_optimal_pl,
        )
        result_path = self.log_dir / f"{record.job_id}.result.json"
        result_path.unlink(missing_ok=True)
        self.listener.on_run_start(recurrence, try_number, record.batch_size, record.job_id)
        try:
            outcome = launch(
                record.command,
                workdir=Path(job.workdir or ".").resolve(),
                env={**self.env, **run_env.as_env()},
                log_path=Path(record.log_path),
                echo=self.echo,
            )
        except KeyboardInterrupt:
            # Saved with the policy state from before predict(): resuming asks again, identically.
            record.message = "interrupted by the user; resume to run this recurrence again"
            state.runs.append(record)
            state.policy_state = before
            save_series(self.run_dir, state)
            raise
        record.exit_code, record.wall_s = outcome.exit_code, outcome.wall_s
        self._fill_result(record, result_path)
        self._observe(job, state, record)
        state.runs.append(record)
        if record.reached:
            total = sum(r.cost or 0.0 for r in state.runs if r.recurrence == recurrence)
            state.min_cost = total if state.min_cost is None else min(state.min_cost, total)
        state.policy_state = self._policy_state()
        save_series(self.run_dir, state)
        self.listener.on_run_end(record)
        if record.reached:
            self.listener.on_recurrence_end(state.recurrences()[-1])
        return record

    def _plan_run(
        self, job: Job, state: SeriesState, recurrence: int, try_number: int
    ) -> RunRecord:
        """Ask the policy, scale the learning rate, fill the template: the run, not yet launched."""
        batch_size = int(self.policy.predict(job))
        if batch_size not in state.batch_sizes:
            raise ZeusError(
                f"policy {self.policy.name} chose batch size {batch_size}, not a candidate"
            )
        run_index = len(state.runs)
        job_id = f"{_safe_name(job.name)}-r{recurrence:03d}-t{try_number:02d}-{run_index:04d}"
        lr = None
        if job.default_lr is not None and not getattr(self.policy, "job_chooses_batch_size", False):
            lr = scale_lr(
                job.default_lr,
                job.default_bs,
                batch_size,
                optimizer=job.optimizer,
                rule=self.lr_rule,
            )
        seed = self.seed + run_index
        assert job.command is not None
        values = {
            "bs": batch_size,
            "lr": format_lr(lr),
            "seed": seed,
            "epochs": job.max_epochs,
            "slice_number": recurrence,
            "target_metric": job.target_metric,
        }
        thresh = None
        if state.min_cost is not None and self.beta_knob is not None:
            thresh = self.beta_knob * state.min_cost
        logger.debug(
            "Recurrence %d try %d: batch size %d, lr %s", recurrence, try_number, batch_size, lr
        )
        return RunRecord(
            run_index=run_index,
            recurrence=recurrence,
            try_number=try_number,
            job_id=job_id,
            batch_size=batch_size,
            learning_rate=lr,
            seed=seed,
            command=fill_template(job.command, values),
            status="interrupted",
            exit_code=None,
            log_path=str(self.log_dir / f"{job_id}.log"),
            cost_thresh=thresh,
        )

    def _fill_result(self, record: RunRecord, result_path: Path) -> None:
        """Read the run's result file into ``record`` and decide its status."""
        result: dict[str, Any] | None = None
        if result_path.exists():
            try:
                result = json.loads(result_path.read_text())
            except json.JSONDecodeError as e:
                record.message = f"unreadable result file {result_path}: {e}"
        if result is not None:
            try:
                self._read_result(record, result)
            except (KeyError, TypeError, ValueError) as e:  # ZeusConfigError is a ValueError
                record.message = f"malformed result file {result_path}: {e}"
                result = None
        if record.exit_code != 0:
            record.status = "crashed"
            record.message = record.message or f"exited with code {record.exit_code}"
            logger.error(
                "Run %s crashed (exit code %s); log: %s",
                record.job_id,
                record.exit_code,
                record.log_path,
            )
        elif result is None:
            record.status = "crashed"
            record.message = record.message or f"exited without writing {result_path.name}"
            logger.error("Run %s wrote no result; log: %s", record.job_id, record.log_path)
        else:
            record.status = "reached" if result.get("reached") else "failed"

    def _read_result(self, record: RunRecord, result: dict[str, Any]) -> None:
        """Copy a run's result into ``record`` and cost it with this series' eta."""
        record.power_limit_w = result.get("power_limit_w")
        record.epochs = result.get("epochs")
        record.energy_j = float(result["energy_j"])
        record.time_s = float(result["time_s"])
        record.final_metric = result.get("final_metric")
        record.max_power_w = float(result["max_power_w"])
        cost_model = CostModel(self.eta_knob, record.max_power_w)
        record.cost = float(cost_model.cost(record.energy_j, record.time_s))
        reported = int(result.get("batch_size", record.batch_size))
        if reported != record.batch_size:
            if not getattr(self.policy, "job_chooses_batch_size", False):
                logger.warning(
                    "Run %s reports batch size %d, launched with %d; recording %d",
                    record.job_id,
                    reported,
                    record.batch_size,
                    reported,
                )
            record.batch_size = reported

    def _observe(self, job: Job, state: SeriesState, record: RunRecord) -> None:
        """Feed the run's outcome to the policy (crashes count as expensive failures)."""
        if record.status == "crashed":
            if state.min_cost is None:
                return  # nothing to compare against yet: retry without blaming the batch size
            budget = state.min_cost * (self.beta_knob or 1.0)
            record.policy_cost = CRASH_PENALTY_FACTOR * budget
        else:
            record.policy_cost = record.cost
        assert record.policy_cost is not None
        self.policy.observe(job, record.batch_size, record.policy_cost, record.reached)
