"""Replay profiles: measured (step time, power) per power limit and batch size, from package data.

Two sources, both shipped in ``zeus/data`` and documented in ``docs/replay-gpu.md``:

* ``profiles/<GPU>+<model>+gpu<ids>.csv``: real logs of the power-limit optimizer's profiling windows.
  Profile ``<gpu>-<model>`` (``a40-resnet50``), or ``<gpu>-<model>-x<n>`` for logs of ``n`` GPUs, which
  keep each GPU's own power. The logs do not record their batch size: such a profile has one curve
  that every step follows, whatever its batch size. A window is `STEPS_PER_WINDOW` steps.
* ``traces/summary_power_<gpu>.csv``: the published power traces, epoch time and average power per
  (workload, batch size, power limit). Profile ``<gpu>-<dataset>-<network>`` holds every batch size of
  the workload (``<gpu>-<dataset>-<network>-<optimizer>`` where a workload was traced with several
  optimizers); ``...-bs<N>`` holds batch size ``N`` alone. A step of ``b`` samples lasts
  ``time_per_epoch · b / samples_per_epoch`` with the data set's training-split size below.

Between measured limits, step time and power are interpolated linearly; outside a curve's measured
limits the nearest measured limit's figures hold. A batch size a profile has no curve for is derived
(`ReplayProfile.at` says so): time per sample and power are interpolated linearly in log2(batch size)
between the two nearest measured batch sizes, or held from the nearest one outside them.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import math
import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from zeus.errors import ZeusConfigError

STEPS_PER_WINDOW = 40
"""Steps in one window of the shipped profiling logs: the power-limit optimizer's default
``profile_steps``, with which they were recorded."""

SAMPLES_PER_EPOCH = {
    "cifar100": 50_000,  # CIFAR-100 training split
    "imagenet": 1_281_167,  # ILSVRC-2012 training split
    "squad": 87_599,  # SQuAD v1.1 training questions
    "librispeech": 281_241,  # LibriSpeech 960 h training utterances
    "movielens-1m": 1_000_209,  # MovieLens-1M ratings
    "sentiment140": 1_600_000,  # Sentiment140 training tweets
}
"""Samples per epoch of the traced workloads: the published sizes of their training splits. They set
each workload's absolute step time; savings, ratios and every decision are independent of them."""


@dataclass(frozen=True)
class Curve:
    """One batch size's measurements at each power limit (ascending)."""

    batch_size: int | None
    """None: the log does not say; every step follows this curve whatever its batch size."""
    power_limits_w: tuple[int, ...]
    step_time_s: tuple[float, ...]
    power_w: tuple[tuple[float, ...], ...]
    """Average board power at each limit, one series per GPU of the profiled job."""

    def __post_init__(self) -> None:
        limits = self.power_limits_w
        if not limits or any(b <= a for a, b in itertools.pairwise(limits)):
            raise ZeusConfigError(f"power_limits_w must be ascending and non-empty, got {limits}")
        series = [self.step_time_s, *self.power_w]
        if not self.power_w or any(len(values) != len(limits) for values in series):
            raise ZeusConfigError(
                f"step_time_s and every power series need one value per power limit ({len(limits)})"
            )
        if any(not 0 < v < math.inf for values in series for v in values):
            raise ZeusConfigError("step times and powers must be finite and > 0")

    def step_time_at(self, limit_w: float) -> float:
        return _interpolate(self.power_limits_w, self.step_time_s, limit_w)

    def power_at(self, limit_w: float, gpu: int = 0) -> float:
        """Power of GPU ``gpu`` of the profiled job (indices beyond its GPUs wrap around)."""
        return _interpolate(self.power_limits_w, self.power_w[gpu % len(self.power_w)], limit_w)


@dataclass(frozen=True)
class StepFigures:
    """What one step of a batch size takes at one power limit, and where that comes from."""

    step_time_s: float
    power_w: float
    derived_from: tuple[int, ...] = ()
    """Measured batch sizes these figures were interpolated from; empty when measured directly."""


@dataclass(frozen=True)
class ReplayProfile:
    """Measured behaviour of one workload on one GPU model: a `Curve` per batch size."""

    name: str
    gpu_model: str
    curves: tuple[Curve, ...]
    source: str

    def __post_init__(self) -> None:
        sizes = [c.batch_size for c in self.curves]
        if not self.curves:
            raise ZeusConfigError(f"replay profile {self.name!r}: needs at least one curve")
        if None in sizes and len(sizes) > 1:
            raise ZeusConfigError(f"replay profile {self.name!r}: one curve without batch size")
        known = [b for b in sizes if b is not None]
        if known != sorted(set(known)):
            raise ZeusConfigError(f"replay profile {self.name!r}: batch sizes must ascend")
        if self.max_power_limit_w <= self.min_power_limit_w:
            raise ZeusConfigError(f"replay profile {self.name!r}: needs two or more power limits")

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Measured batch sizes; empty when the profile's log does not say."""
        return tuple(c.batch_size for c in self.curves if c.batch_size is not None)

    @property
    def reference_batch_size(self) -> int | None:
        """What a step without a batch size counts as: the middle measured batch size."""
        sizes = self.batch_sizes
        return sizes[(len(sizes) - 1) // 2] if sizes else None

    @property
    def min_power_limit_w(self) -> int:
        return min(c.power_limits_w[0] for c in self.curves)

    @property
    def max_power_limit_w(self) -> int:
        return max(c.power_limits_w[-1] for c in self.curves)

    @property
    def default_power_limit_w(self) -> int:
        """Drivers default to the maximum (TDP) limit."""
        return self.max_power_limit_w

    @property
    def num_gpus(self) -> int:
        """GPUs of the profiled job (multi-GPU logs keep each GPU's power)."""
        return len(self.curves[0].power_w)

    def at(self, batch_size: int | None, limit_w: float, gpu: int = 0) -> StepFigures:
        """Step time and power of GPU ``gpu`` for a step of ``batch_size`` samples at ``limit_w``."""
        if self.curves[0].batch_size is None:
            curve = self.curves[0]
            return StepFigures(curve.step_time_at(limit_w), curve.power_at(limit_w, gpu))
        b = self.reference_batch_size if batch_size is None else batch_size
        assert b is not None
        sizes = self.batch_sizes
        i = bisect_right(sizes, b)
        if i > 0 and sizes[i - 1] == b:
            curve = self.curves[i - 1]
            return StepFigures(curve.step_time_at(limit_w), curve.power_at(limit_w, gpu))
        lo, hi = self.curves[max(i - 1, 0)], self.curves[min(i, len(sizes) - 1)]
        assert lo.batch_size is not None and hi.batch_size is not None
        per_sample = (
            lo.step_time_at(limit_w) / lo.batch_size,
            hi.step_time_at(limit_w) / hi.batch_size,
        )
        powers = (lo.power_at(limit_w, gpu), hi.power_at(limit_w, gpu))
        frac = 0.0
        if hi.batch_size != lo.batch_size:
            span = math.log2(hi.batch_size) - math.log2(lo.batch_size)
            frac = (math.log2(b) - math.log2(lo.batch_size)) / span
        frac = min(max(frac, 0.0), 1.0)
        return StepFigures(
            step_time_s=b * (per_sample[0] + frac * (per_sample[1] - per_sample[0])),
            power_w=powers[0] + frac * (powers[1] - powers[0]),
            derived_from=tuple(sorted({lo.batch_size, hi.batch_size})),
        )

    def describe(self) -> str:
        """One line: GPU, batch sizes and the data it comes from."""
        sizes = self.batch_sizes
        what = (
            f"batch sizes {', '.join(map(str, sizes))}"
            if sizes
            else "one batch size (the log does not say which)"
        )
        return (
            f"{self.name}: NVIDIA {self.gpu_model}, {self.min_power_limit_w}..{self.max_power_limit_w}"
            f" W, {what}; from {self.source}"
        )


def _interpolate(xs: Sequence[int], ys: Sequence[float], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect_right(xs, x) - 1
    frac = (x - xs[i]) / (xs[i + 1] - xs[i])
    return ys[i] + frac * (ys[i + 1] - ys[i])


# ---------------------------------------------------------------------------------------------------
# Loading from package data


def _read_data(folder: str, filename: str) -> str:
    return resources.files("zeus.data").joinpath(folder).joinpath(filename).read_text()


def _data_files(folder: str) -> list[str]:
    return sorted(p.name for p in resources.files("zeus.data").joinpath(folder).iterdir())


_WINDOW_LIMIT = re.compile(r"(\d+)$")
_PROFILE_FILE = re.compile(r"^(?P<gpu>[^+]+)\+(?P<model>[^+]+)\+gpu(?P<ids>[\d,]+)\.csv$")


def _window_log_profile(name: str, gpu_model: str, filename: str) -> ReplayProfile:
    """Per-window log: power of GPU i = its energy / elapsed; step time = elapsed / steps."""
    rows = list(csv.DictReader(io.StringIO(_read_data("profiles", filename))))
    energy_columns = [c for c in rows[0] if c.startswith("gpu") and c.endswith("_energy")]
    by_limit: dict[int, tuple[float, list[float]]] = {}
    for row in rows:
        match = _WINDOW_LIMIT.search(row["window_name"])
        if match is None:
            raise ZeusConfigError(f"{filename}: window_name {row['window_name']!r} lacks a limit")
        elapsed_s = float(row["elapsed_time"])
        by_limit[int(match.group(1))] = (
            elapsed_s,
            [float(row[c]) / elapsed_s for c in energy_columns],
        )
    limits = tuple(sorted(by_limit))
    curve = Curve(
        batch_size=None,
        power_limits_w=limits,
        step_time_s=tuple(by_limit[lim][0] / STEPS_PER_WINDOW for lim in limits),
        power_w=tuple(
            tuple(by_limit[lim][1][g] for lim in limits) for g in range(len(energy_columns))
        ),
    )
    return ReplayProfile(name, gpu_model, (curve,), f"zeus/data/profiles/{filename}")


def _window_log_profiles() -> dict[str, ReplayProfile]:
    found: dict[str, ReplayProfile] = {}
    for filename in _data_files("profiles"):
        match = _PROFILE_FILE.match(filename)
        if match is None:
            continue
        n = len(match["ids"].split(","))
        name = f"{match['gpu'].lower()}-{match['model'].lower()}" + (f"-x{n}" if n > 1 else "")
        found[name] = _window_log_profile(name, match["gpu"].upper(), filename)
    return found


def _trace_curve(dataset: str, batch_size: int, rows: list[dict[str, str]]) -> Curve:
    by_limit = {
        int(r["power_limit"]): (float(r["time_per_epoch"]), float(r["average_power"])) for r in rows
    }
    limits = tuple(sorted(by_limit))
    samples = SAMPLES_PER_EPOCH[dataset]
    return Curve(
        batch_size=batch_size,
        power_limits_w=limits,
        step_time_s=tuple(by_limit[lim][0] * batch_size / samples for lim in limits),
        power_w=(tuple(by_limit[lim][1] for lim in limits),),
    )


def _trace_gpus() -> dict[str, str]:
    """GPU name (lower case) -> its power-trace file."""
    found = {}
    for filename in _data_files("traces"):
        match = re.fullmatch(r"summary_power_(\w+)\.csv", filename)
        if match is not None:
            found[match.group(1).lower()] = filename
    return found


@functools.cache
def _trace_profiles(gpu: str) -> dict[str, ReplayProfile]:
    """One GPU's profiles: one per workload with every batch size, one per batch size (``-bs<N>``)."""
    filename = _trace_gpus()[gpu]
    rows = list(csv.DictReader(io.StringIO(_read_data("traces", filename))))
    grouped: dict[tuple[str, str, str], dict[int, list[dict[str, str]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    optimizers: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        key = (row["dataset"], row["network"])
        if row["optimizer"] not in optimizers[key]:
            optimizers[key].append(row["optimizer"])
        grouped[(key[0], key[1], row["optimizer"])][int(row["batch_size"])].append(row)
    found: dict[str, ReplayProfile] = {}
    source = f"zeus/data/traces/{filename}"
    for (dataset, network, optimizer), by_batch in grouped.items():
        base = f"{gpu}-{dataset}-{network}".lower().replace("_", "-")
        names = []
        if optimizer == optimizers[(dataset, network)][0]:
            names.append(base)  # the first optimizer listed is the default
        if len(optimizers[(dataset, network)]) > 1:  # the suffix only where it disambiguates
            names.append(f"{base}-{optimizer.lower()}")
        curves = {
            b: _trace_curve(dataset, b, rs)
            for b, rs in sorted(by_batch.items())
            if len({r["power_limit"] for r in rs}) >= 2
        }
        for name in names:
            found[name] = ReplayProfile(name, gpu.upper(), tuple(curves.values()), source)
            for b, curve in curves.items():
                found[f"{name}-bs{b}"] = ReplayProfile(
                    f"{name}-bs{b}", gpu.upper(), (curve,), source
                )
    return found


@functools.cache
def _window_logs() -> dict[str, ReplayProfile]:
    return _window_log_profiles()


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def list_profiles() -> list[str]:
    """Names of every shipped replay profile, sorted."""
    names = list(_window_logs())
    for gpu in _trace_gpus():
        names += _trace_profiles(gpu)
    return sorted(names)


def measured_profiles() -> list[ReplayProfile]:
    """Every measurement set once, sorted by name: each profiling log and each traced (workload,
    optimizer, batch size). Workload profiles and names that alias another are left out."""
    found: list[ReplayProfile] = []
    seen: set[tuple[str, tuple[Curve, ...]]] = set()
    for name in list_profiles():
        profile = load_profile(name)
        key = (profile.source, profile.curves)
        if len(profile.curves) == 1 and key not in seen:
            seen.add(key)
            found.append(profile)
    return found


def load_profile(name: str) -> ReplayProfile:
    """The shipped profile called ``name`` (case-insensitive; ``_`` and ``-`` are interchangeable).

    Reads only the data file the name points at."""
    wanted = _normalise(name)
    gpu = wanted.split("-")[0]
    candidates = dict(_window_logs())
    if gpu in _trace_gpus():
        candidates.update(_trace_profiles(gpu))
    for candidate, profile in candidates.items():
        if _normalise(candidate) == wanted:
            return profile
    examples = ", ".join(n for n in list_profiles() if "-bs" not in n)
    raise ZeusConfigError(
        f"replay profile {name!r} does not exist; allowed: {examples}, or one of their "
        "'-bs<N>' variants (`zeus show-env --profiles` lists all)"
    )
