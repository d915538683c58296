"""Train and power traces, the six published workloads, and their joined per-workload arrays.

Traces ship as package data (``zeus/data/traces/``, columns documented in its README) and load by
name (``load_power_trace("v100")``) or from a user's CSV in the same format. A
:class:`WorkloadTable` holds everything one simulation needs as numpy arrays, so a recurrence is a
few array lookups rather than a table scan.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from zeus.errors import ZeusConfigError
from zeus.job import Job

TRAIN_COLUMNS = (
    "dataset",
    "network",
    "batch_size",
    "optimizer",
    "learning_rate",
    "run",
    "target_metric",
    "target_epoch",
)
POWER_COLUMNS = (
    "dataset",
    "network",
    "batch_size",
    "optimizer",
    "power_limit",
    "time_per_epoch",
    "average_power",
)
GPUS = ("a40", "p100", "rtx6000", "v100")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Workload:
    """A published workload and the defaults of its job."""

    dataset: str
    network: str
    optimizer: str
    target_metric: float
    max_epochs: int
    default_bs: int
    default_lr: float | None = None
    higher_is_better: bool = True

    def job(self, **overrides: object) -> Job:
        fields: dict[str, object] = {
            "dataset": self.dataset,
            "network": self.network,
            "optimizer": self.optimizer,
            "target_metric": self.target_metric,
            "max_epochs": self.max_epochs,
            "default_bs": self.default_bs,
            "default_lr": self.default_lr,
            "higher_is_better": self.higher_is_better,
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return Job(**fields)  # type: ignore[arg-type]


WORKLOADS: dict[str, Workload] = {
    w.dataset: w
    for w in (
        Workload("cifar100", "shufflenetv2", "adadelta", 0.6, 100, 1024, 0.1),
        Workload("imagenet", "resnet50", "adadelta", 0.65, 100, 256),
        Workload("squad", "bert_base_uncased", "adamw", 84.0, 6, 32),
        Workload("librispeech", "deepspeech2", "adamw", 40.0, 16, 256, higher_is_better=False),
        Workload("movielens-1m", "ncf", "adam", 0.41, 100, 1024),
        Workload("sentiment140", "bert_base_uncased", "adamw", 0.84, 10, 128, 4e-7),
    )
}


def workload(dataset: str) -> Workload:
    """The published workload of ``dataset``; the error lists the valid names."""
    try:
        return WORKLOADS[dataset]
    except KeyError:
        raise ZeusConfigError(
            f"unknown dataset {dataset!r}; valid: {', '.join(WORKLOADS)}"
        ) from None


def _read_csv(path: Path | str, columns: tuple[str, ...], what: str) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise ZeusConfigError(f"{what} file {path} does not exist")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ZeusConfigError(
                f"{what} {path} lacks column(s) {', '.join(missing)}; needs {', '.join(columns)}"
            )
        return list(reader)


def _data_path(name: str) -> Path:
    return Path(str(resources.files("zeus") / "data" / "traces" / name))


@dataclass(frozen=True)
class TrainTrace:
    """Epochs to reach each target, per (workload, batch size, run). NaN = never reached."""

    source: str
    rows: tuple[tuple[str, str, str, int, float, float], ...]  # ds, net, opt, bs, target, epoch
    _by_workload: dict[tuple[str, str, str], list[tuple[int, float, float]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_workload: dict[tuple[str, str, str], list[tuple[int, float, float]]] = {}
        for ds, net, opt, bs, target, epoch in self.rows:
            by_workload.setdefault((ds, net, opt), []).append((bs, target, epoch))
        self._by_workload.update(by_workload)

    def target_epochs(self, job: Job) -> dict[int, FloatArray]:
        """Per batch size, the target epoch of every run of ``job`` at its target metric."""
        key = (job.dataset, job.network, job.optimizer)
        found: dict[int, list[float]] = {}
        targets: set[float] = set()
        rows: list[tuple[int, float, float]] = self._by_workload.get(key, [])
        for bs, target, epoch in rows:
            targets.add(target)
            if math.isclose(target, job.target_metric, rel_tol=1e-9, abs_tol=1e-12):
                found.setdefault(bs, []).append(epoch)
        if not targets:
            known = sorted({f"{r[0]}/{r[1]}/{r[2]}" for r in self.rows})
            raise ZeusConfigError(
                f"train trace {self.source} has no rows for dataset/network/optimizer "
                f"{'/'.join(key)}; valid: {', '.join(known)}"
            )
        if not found:
            raise ZeusConfigError(
                f"train trace {self.source} has no rows for {job.name} at target_metric "
                f"{job.target_metric:g}; valid targets: {', '.join(f'{t:g}' for t in sorted(targets))}"
            )
        return {bs: np.array(v, dtype=np.float64) for bs, v in sorted(found.items())}


@dataclass(frozen=True)
class PowerTrace:
    """Time per epoch (s) and average power (W) per (workload, batch size, power limit) of a GPU."""

    gpu: str
    rows: tuple[tuple[str, str, str, int, int, float, float], ...]  # ds, net, opt, bs, pl, t, p

    @property
    def max_power_w(self) -> int:
        """The largest power limit anywhere in this GPU's trace (the cost's MAXPOWER)."""
        return max(r[4] for r in self.rows)

    def table(self, job: Job) -> tuple[list[int], list[int], FloatArray, FloatArray]:
        """(batch sizes, power limits ascending, time[bs, pl], power[bs, pl]); NaN where unmeasured."""
        key = (job.dataset, job.network, job.optimizer)
        rows = [r for r in self.rows if r[:3] == key]
        if not rows:
            known = sorted({f"{r[0]}/{r[1]}/{r[2]}" for r in self.rows})
            raise ZeusConfigError(
                f"power trace of {self.gpu} has no rows for {'/'.join(key)}; valid: {', '.join(known)}"
            )
        sizes = sorted({r[3] for r in rows})
        limits = sorted({r[4] for r in rows})
        time_s = np.full((len(sizes), len(limits)), np.nan)
        power_w = np.full_like(time_s, np.nan)
        for _, _, _, bs, pl, t, p in rows:
            i, j = sizes.index(bs), limits.index(pl)
            time_s[i, j], power_w[i, j] = t, p
        return sizes, limits, time_s, power_w


def _float(value: str, what: str) -> float:
    try:
        return float(value) if value.strip() else math.nan
    except ValueError:
        raise ZeusConfigError(f"{what}: not a number: {value!r}") from None


@functools.lru_cache(maxsize=8)
def load_train_trace(path: str | None = None) -> TrainTrace:
    """The bundled train trace, or a user's CSV with the columns of ``TRAIN_COLUMNS``."""
    source = str(path) if path is not None else "bundled summary_train.csv"
    file = Path(path) if path is not None else _data_path("summary_train.csv")
    rows = []
    for n, r in enumerate(_read_csv(file, TRAIN_COLUMNS, "train trace"), start=2):
        where = f"{source} line {n}"
        rows.append(
            (
                r["dataset"],
                r["network"],
                r["optimizer"],
                int(_float(r["batch_size"], where)),
                _float(r["target_metric"], where),
                _float(r["target_epoch"], where),
            )
        )
    return TrainTrace(source, tuple(rows))


@functools.lru_cache(maxsize=16)
def load_power_trace(gpu_or_path: str) -> PowerTrace:
    """A bundled GPU's power trace by name (``"v100"``) or a user's CSV (``POWER_COLUMNS``)."""
    if gpu_or_path.lower() in GPUS:
        gpu = gpu_or_path.lower()
        file = _data_path(f"summary_power_{gpu}.csv")
    elif gpu_or_path.endswith(".csv") or Path(gpu_or_path).is_file():
        file = Path(gpu_or_path)
        gpu = file.stem.removeprefix("summary_power_")
    else:
        raise ZeusConfigError(
            f"unknown GPU {gpu_or_path!r}; valid: {', '.join(GPUS)} or a power-trace CSV path"
        )
    rows = []
    for n, r in enumerate(_read_csv(file, POWER_COLUMNS, "power trace"), start=2):
        where = f"{file} line {n}"
        t, p = _float(r["time_per_epoch"], where), _float(r["average_power"], where)
        rows.append(
            (
                r["dataset"],
                r["network"],
                r["optimizer"],
                int(_float(r["batch_size"], where)),
                int(_float(r["power_limit"], where)),
                t,
                p,
            )
        )
    if not rows:
        raise ZeusConfigError(f"power trace {file} has no rows")
    return PowerTrace(gpu, tuple(rows))


@dataclass(frozen=True)
class WorkloadTable:
    """One job on one GPU, joined and precomputed. Index ``i`` over batch sizes, ``j`` over limits.

    ``epoch_time_s``/``epoch_energy_j`` are NaN where a (batch size, limit) was not measured.
    ``run_epochs[i]`` holds the target epoch of every trace run at batch size ``i`` (NaN = never).
    """

    job: Job
    gpu: str
    batch_sizes: tuple[int, ...]
    power_limits: tuple[int, ...]  # ascending
    epoch_time_s: FloatArray
    epoch_energy_j: FloatArray
    run_epochs: tuple[FloatArray, ...]
    max_power_w: float

    def index(self, batch_size: int) -> int:
        return self.batch_sizes.index(batch_size)

    def epoch_cost(self, eta_knob: float) -> FloatArray:
        """Per-epoch cost of every (batch size, limit): ``(eta·P + (1 − eta)·MAXPOWER)·t``."""
        from zeus.cost import zeus_cost

        return zeus_cost(self.epoch_energy_j, self.epoch_time_s, eta_knob, self.max_power_w)


def build_table(job: Job, train: TrainTrace, power: PowerTrace) -> WorkloadTable:
    """Join the traces for ``job`` on one GPU; cap ``job.default_bs`` at the largest measured size.

    The returned table's ``job`` carries the (possibly capped) default batch size.
    """
    epochs = train.target_epochs(job)
    sizes, limits, time_s, power_w = power.table(job)
    joined = [b for b in sizes if b in epochs]
    if not joined:
        raise ZeusConfigError(
            f"no batch size of {job.name} is in both the train trace and the {power.gpu} power trace"
        )
    default_bs = job.default_bs
    if default_bs > max(sizes):
        default_bs = max(joined)
    if default_bs not in joined:
        raise ZeusConfigError(
            f"b0 (default batch size) {job.default_bs} of {job.name} is not in the {power.gpu} "
            f"traces; valid: {', '.join(map(str, joined))}"
        )
    rows = [sizes.index(b) for b in joined]
    import dataclasses

    return WorkloadTable(
        job=dataclasses.replace(job, default_bs=default_bs),
        gpu=power.gpu,
        batch_sizes=tuple(joined),
        power_limits=tuple(limits),
        epoch_time_s=time_s[rows],
        epoch_energy_j=(time_s * power_w)[rows],
        run_epochs=tuple(epochs[b] for b in joined),
        max_power_w=float(power.max_power_w),
    )
