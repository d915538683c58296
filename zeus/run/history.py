"""What `ZeusMaster` remembers about a series of recurrences, and how it is kept on disk.

The whole state of a series (configuration, every run, the policy's ``state_dict()``) is one JSON file,
``series.json`` in the run directory, replaced atomically after every run so that a series interrupted
at any point resumes exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from zeus.errors import ZeusConfigError

SERIES_FILE = "series.json"
FORMAT_VERSION = 1

RunStatus = Literal["reached", "failed", "crashed", "interrupted"]


@dataclass
class RunRecord:
    """One launch of the job: a try within a recurrence."""

    run_index: int
    recurrence: int
    try_number: int
    job_id: str
    batch_size: int
    learning_rate: float | None
    seed: int
    command: list[str]
    status: RunStatus
    exit_code: int | None
    log_path: str
    cost_thresh: float | None
    """The early-stopping budget handed to the run (None = no bound)."""
    power_limit_w: int | None = None
    epochs: int | None = None
    energy_j: float | None = None
    time_s: float | None = None
    cost: float | None = None
    """Energy–time cost of this run (`zeus.cost.CostModel`), when it wrote a result."""
    policy_cost: float | None = None
    """The cost the policy observed (a crash is observed as an expensive failure); None = not observed."""
    final_metric: float | None = None
    max_power_w: float | None = None
    wall_s: float = 0.0
    message: str = ""

    @property
    def reached(self) -> bool:
        return self.status == "reached"


@dataclass
class RecurrenceSummary:
    """A recurrence's totals over all its tries (failed ones included)."""

    recurrence: int
    runs: list[RunRecord]

    @property
    def reached(self) -> bool:
        return any(r.reached for r in self.runs)

    @property
    def final(self) -> RunRecord:
        return self.runs[-1]

    def _total(self, name: str) -> float:
        return sum(float(getattr(r, name) or 0.0) for r in self.runs)

    @property
    def energy_j(self) -> float:
        return self._total("energy_j")

    @property
    def time_s(self) -> float:
        return self._total("time_s")

    @property
    def cost(self) -> float:
        return self._total("cost")


@dataclass
class SeriesState:
    """Everything needed to continue a series: its configuration, history and policy state."""

    job: dict[str, Any]
    batch_sizes: list[int]
    policy_name: str
    eta_knob: float
    beta_knob: float | None
    seed: int
    runs: list[RunRecord] = field(default_factory=list)
    policy_state: dict[str, Any] | None = None
    min_cost: float | None = None
    version: int = FORMAT_VERSION

    @property
    def completed_recurrences(self) -> int:
        """Recurrences that ended with a run reaching the target."""
        return sum(1 for r in self.runs if r.reached)

    def recurrences(self) -> list[RecurrenceSummary]:
        """Runs grouped per recurrence, interrupted launches left out."""
        grouped: dict[int, list[RunRecord]] = {}
        for run in self.runs:
            if run.status != "interrupted":
                grouped.setdefault(run.recurrence, []).append(run)
        return [RecurrenceSummary(k, v) for k, v in sorted(grouped.items())]

    def differences(self, other: SeriesState) -> list[str]:
        """``field: saved value here, value there`` for every setting in which ``other`` differs
        (the job field by field): a series resumes only with the same settings."""
        found = []
        for name in ("batch_sizes", "policy_name", "eta_knob", "beta_knob", "seed"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                found.append(f"{name}: {mine!r} saved, {theirs!r} now")
        for key in sorted(set(self.job) | set(other.job)):
            mine, theirs = self.job.get(key), other.job.get(key)
            if mine != theirs:
                found.append(f"job.{key}: {mine!r} saved, {theirs!r} now")
        return found

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["min_cost"] = _finite_or_none(self.min_cost)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesState:
        if data.get("version") != FORMAT_VERSION:
            raise ZeusConfigError(
                f"series file version must be {FORMAT_VERSION}, got {data.get('version')!r}"
            )
        runs = [RunRecord(**r) for r in data.pop("runs", [])]
        return cls(runs=runs, **data)


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def save_series(run_dir: Path, state: SeriesState) -> None:
    """Write ``series.json`` atomically (write a temporary file, then rename over the old one)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".series-", suffix=".json", dir=run_dir)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state.to_json(), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, run_dir / SERIES_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_series(run_dir: Path) -> SeriesState | None:
    """The saved series in ``run_dir``, or None when there is none yet."""
    path = run_dir / SERIES_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return SeriesState.from_json(data)
    except (json.JSONDecodeError, TypeError) as e:
        raise ZeusConfigError(f"{path} is not a Zeus series file: {e}") from e
