"""`zeus profile`: measure your own workload and write a train/power trace pair for the simulator.

For every candidate batch size (and ``runs`` seeds of it) the user's training command is launched
like `ZeusMaster` launches a recurrence: with the ``ZEUS_*`` variables in its environment. The job's
`ZeusDataLoader` profiles every power limit just in time (`GlobalPowerLimitOptimizer`, exhaustive
search, ``profile_params`` warmup/measured steps per limit) and saves the per-limit measurements in
``ZEUS_LOG_DIR``; it trains until the target metric and writes how many epochs that took. From those
files this module writes, in the published trace format (`zeus/data/traces`):

* ``summary_train.csv`` — dataset, network, batch_size, optimizer, learning_rate, run,
  target_metric, target_epoch (empty when the run never reached the target);
* ``summary_power_<gpu>.csv`` — dataset, network, batch_size, optimizer, power_limit,
  time_per_epoch (time per step × steps per epoch), average_power (energy per step / time per step;
  the whole job's power for data-parallel jobs).

Then ``zeus simulate single --train-trace summary_train.csv --gpu summary_power_<gpu>.csv ...``
answers "what would Zeus save on my workload?".
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zeus.errors import ZeusConfigError, ZeusError, check_range
from zeus.policy.lr_scaling import scale_lr
from zeus.run.launch import ZeusRunEnv, check_template, fill_template, format_lr, launch
from zeus.simulate.traces import POWER_COLUMNS, TRAIN_COLUMNS

logger = logging.getLogger(__name__)


class ProfilingError(ZeusError):
    """A profiling run crashed, wrote no result, or measured no power limit."""


@dataclass(frozen=True)
class ProfileSpec:
    """What to profile. ``command`` must use ``{bs}``; ``{lr}``, ``{seed}`` (the run number),
    ``{epochs}`` and ``{target_metric}`` are filled too."""

    command: tuple[str, ...]
    dataset: str
    network: str
    optimizer: str
    batch_sizes: tuple[int, ...]
    target_metric: float
    max_epochs: int
    samples_per_epoch: int
    workdir: Path = Path(".")
    default_bs: int | None = None
    default_lr: float | None = None
    runs: int = 1
    profile_params: tuple[int, int] = (2, 5)
    eta_knob: float = 0.5
    env: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        check_template(self.command)
        if not any("{bs}" in arg for arg in self.command):
            raise ZeusConfigError("command must pass the batch size to the job with {bs}")
        for name in ("dataset", "network", "optimizer"):
            if not getattr(self, name) or "," in getattr(self, name):
                raise ZeusConfigError(f"{name} must be a non-empty name without commas")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ZeusConfigError(f"batch_sizes must be positive integers, got {self.batch_sizes}")
        check_range("max_epochs", self.max_epochs, ge=1)
        check_range("samples_per_epoch", self.samples_per_epoch, ge=1)
        check_range("runs", self.runs, ge=1)
        check_range("profile_params warmup", self.profile_params[0], ge=0)
        check_range("profile_params measure", self.profile_params[1], ge=1)
        if self.default_lr is not None and self.default_bs is None:
            raise ZeusConfigError("default_bs is needed to scale default_lr to other batch sizes")
        if not self.workdir.is_dir():
            raise ZeusConfigError(f"workdir {self.workdir} is not a directory")

    def learning_rate(self, batch_size: int) -> float | None:
        if self.default_lr is None or self.default_bs is None:
            return None
        return scale_lr(self.default_lr, self.default_bs, batch_size, optimizer=self.optimizer)


@dataclass(frozen=True)
class ProfiledRun:
    batch_size: int
    run: int
    learning_rate: float | None
    epochs: int
    reached: bool
    log_path: Path


@dataclass
class ProfileOutcome:
    """The written traces and what they were made from."""

    train_trace: Path
    power_trace: Path
    gpu: str
    runs: list[ProfiledRun]
    power_rows: list[dict[str, Any]]
    missing_limits: dict[int, list[int]] = field(default_factory=dict)
    """Per batch size, the power limits measured for another batch size but not for this one."""


def gpu_slug(gpu_model: str) -> str:
    """``"NVIDIA A40 (replay)"`` -> ``"nvidia-a40-replay"``: the ``<gpu>`` of the power trace name."""
    return re.sub(r"[^a-z0-9]+", "-", gpu_model.lower()).strip("-") or "gpu"


def _run_once(
    spec: ProfileSpec, batch_size: int, run: int, log_dir: Path, echo: Callable[[str], None] | None
) -> ProfiledRun:
    lr = spec.learning_rate(batch_size)
    job_id = f"profile-bs{batch_size}-run{run}"
    values = {
        "bs": batch_size,
        "lr": format_lr(lr),
        "seed": run,
        "epochs": spec.max_epochs,
        "slice_number": run,
        "target_metric": spec.target_metric,
    }
    env = ZeusRunEnv(
        target_metric=spec.target_metric,
        log_dir=log_dir,
        job_id=job_id,
        cost_thresh=None,
        eta_knob=spec.eta_knob,
        profile_params=spec.profile_params,
        use_optimal_pl=True,
    )
    log_path = log_dir / f"{job_id}.log"
    result_path = log_dir / f"{job_id}.result.json"
    result_path.unlink(missing_ok=True)
    outcome = launch(
        fill_template(spec.command, values),
        workdir=spec.workdir.resolve(),
        env={**spec.env, **env.as_env()},
        log_path=log_path,
        echo=echo,
    )
    if outcome.exit_code != 0 or not result_path.exists():
        why = f"exited with code {outcome.exit_code}" if outcome.exit_code else "wrote no result"
        raise ProfilingError(
            f"profiling run at batch size {batch_size} (run {run}) {why}; see {log_path}"
        )
    result = json.loads(result_path.read_text())
    return ProfiledRun(
        batch_size, run, lr, int(result["epochs"]), bool(result["reached"]), log_path
    )


def _read_measurements(log_dir: Path, batch_size: int, log_path: Path) -> tuple[str, list[Any]]:
    """(GPU model, per-limit measurements) from the profile the job's loader saved."""
    files = sorted(log_dir.glob(f"*+bs{batch_size}.json"))
    if not files:
        raise ProfilingError(
            f"batch size {batch_size}: the job saved no power-limit profile in ZEUS_LOG_DIR. Does it "
            f"train with ZeusDataLoader, and is an epoch longer than warmup + measured steps per "
            f"limit? See {log_path}"
        )
    data = json.loads(files[0].read_text())
    return str(data["gpu_model"]), list(data["measurements"])


def _power_rows(
    spec: ProfileSpec, batch_size: int, measurements: list[Any]
) -> list[dict[str, Any]]:
    steps_per_epoch = math.ceil(spec.samples_per_epoch / batch_size)
    rows = []
    for m in sorted(measurements, key=lambda m: m["power_limit_w"]):
        time_per_step_s = float(m["time_per_step_s"])
        rows.append(
            {
                "dataset": spec.dataset,
                "network": spec.network,
                "batch_size": batch_size,
                "optimizer": spec.optimizer,
                "power_limit": int(m["power_limit_w"]),
                "time_per_epoch": time_per_step_s * steps_per_epoch,
                "average_power": float(m["energy_per_step_j"]) / time_per_step_s,
            }
        )
    return rows


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def profile_workload(
    spec: ProfileSpec,
    out_dir: str | Path,
    *,
    gpu_name: str | None = None,
    echo: Callable[[str], None] | None = None,
    on_run: Callable[[ProfiledRun], None] | None = None,
) -> ProfileOutcome:
    """Run the grid (batch sizes × runs) and write ``summary_train.csv`` + ``summary_power_<gpu>.csv``."""
    spec.validate()
    out = Path(out_dir)
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: list[ProfiledRun] = []
    power_rows: list[dict[str, Any]] = []
    models: set[str] = set()
    for batch_size in sorted(set(spec.batch_sizes)):
        for run in range(1, spec.runs + 1):
            profiled = _run_once(spec, batch_size, run, log_dir, echo)
            runs.append(profiled)
            if on_run is not None:
                on_run(profiled)
        model, measurements = _read_measurements(log_dir, batch_size, runs[-1].log_path)
        models.add(model)
        power_rows.extend(_power_rows(spec, batch_size, measurements))
    if len(models) > 1:
        logger.warning("profiles come from different GPU models: %s", sorted(models))
    gpu = gpu_name or gpu_slug(sorted(models)[0])
    train_rows = [
        {
            "dataset": spec.dataset,
            "network": spec.network,
            "batch_size": r.batch_size,
            "optimizer": spec.optimizer,
            "learning_rate": format_lr(r.learning_rate),
            "run": r.run,
            "target_metric": spec.target_metric,
            "target_epoch": r.epochs if r.reached else "",
        }
        for r in runs
    ]
    missing = _missing_limits(power_rows)
    for batch_size, limits in missing.items():
        logger.warning(
            "batch size %d: power limits %s not measured (its runs ended before profiling did: "
            "fewer steps per limit or a later target lets them finish)",
            batch_size,
            limits,
        )
    train_path, power_path = out / "summary_train.csv", out / f"summary_power_{gpu}.csv"
    _write_csv(train_path, TRAIN_COLUMNS, train_rows)
    _write_csv(power_path, POWER_COLUMNS, power_rows)
    logger.info("wrote %s and %s", train_path, power_path)
    return ProfileOutcome(train_path, power_path, gpu, runs, power_rows, missing)


def _missing_limits(power_rows: list[dict[str, Any]]) -> dict[int, list[int]]:
    measured: dict[int, set[int]] = {}
    for row in power_rows:
        measured.setdefault(int(row["batch_size"]), set()).add(int(row["power_limit"]))
    every = set().union(*measured.values()) if measured else set()
    return {b: sorted(every - limits) for b, limits in measured.items() if every - limits}
