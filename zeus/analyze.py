"""Integrate power logs written by `zeus.monitor.PowerMonitor` / ``zeus monitor power``.

A log is a CSV with header ``timestamp_s,gpu,power_w`` (Unix seconds, GPU index, watts), gzipped or
not (``.csv.gz``), or the same rows as tuples or dicts. ``start``/``end`` are offsets in seconds from the log's first sample; a
negative offset counts back from its last sample (``start=-10``: the last ten seconds). Energy is
integrated per GPU with the trapezoid rule; window edges between samples are interpolated.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from zeus.errors import ZeusConfigError
from zeus.monitor.power import CSV_HEADER, Sample, integrate_j

PowerLog = str | os.PathLike[str] | Iterable[Sequence[object] | Mapping[str, object]]


def _number(value: object, where: str, column: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ZeusConfigError(
            f"power log {where}, column {column}: {value!r} is not a number"
        ) from None
    if not math.isfinite(number):
        raise ZeusConfigError(f"power log {where}, column {column}: {value!r} is not finite")
    return number


def _parse_row(
    row: Sequence[object] | Mapping[str, object], where: str
) -> tuple[float, int, float]:
    if isinstance(row, Mapping):
        missing = [c for c in CSV_HEADER if c not in row or row[c] in (None, "")]
        if missing:
            raise ZeusConfigError(
                f"power log {where}: missing column(s) {', '.join(missing)}; "
                f"expected {','.join(CSV_HEADER)}"
            )
        values = [row[c] for c in CSV_HEADER]
    else:
        if len(row) != 3:
            raise ZeusConfigError(
                f"power log {where}: {len(row)} fields, expected 3 ({','.join(CSV_HEADER)})"
            )
        values = list(row)
    timestamp_s = _number(values[0], where, "timestamp_s")
    gpu = _number(values[1], where, "gpu")
    power_w = _number(values[2], where, "power_w")
    if gpu != int(gpu) or gpu < 0:
        raise ZeusConfigError(f"power log {where}, column gpu: {values[1]!r} is not an index >= 0")
    if power_w < 0:
        raise ZeusConfigError(f"power log {where}, column power_w: {values[2]!r} must be >= 0")
    return timestamp_s, int(gpu), power_w


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="")
    return path.open(newline="")


def _not_csv_text(path: Path) -> ZeusConfigError:
    return ZeusConfigError(
        f"power log {path} is not a CSV text file ({','.join(CSV_HEADER)}; .csv.gz works too)"
    )


def _csv_rows(path: Path) -> list[tuple[float, int, float]]:
    try:
        with _open_text(path) as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if not ",".join(header).isprintable():
                raise _not_csv_text(path)
            if any(c not in header for c in CSV_HEADER):
                raise ZeusConfigError(
                    f"power log {path}: line 1 header {','.join(header) or '(empty)'} lacks "
                    f"{', '.join(c for c in CSV_HEADER if c not in header)}; "
                    f"expected {','.join(CSV_HEADER)}"
                )
            return [_parse_row(row, f"{path} line {i}") for i, row in enumerate(reader, start=2)]
    except (UnicodeDecodeError, csv.Error, gzip.BadGzipFile, EOFError):
        raise _not_csv_text(path) from None
    except OSError as e:
        raise ZeusConfigError(f"cannot read power log {path}: {e.strerror or e}") from e


def read_power_log(log: PowerLog) -> dict[int, list[Sample]]:
    """GPU index -> time-sorted [(timestamp_s, power_w)] from a CSV path or rows."""
    if isinstance(log, (str, os.PathLike)):
        rows = _csv_rows(Path(log))
    else:
        rows = [_parse_row(row, f"row {i}") for i, row in enumerate(log)]
    series: dict[int, list[Sample]] = {}
    for timestamp_s, gpu, power_w in rows:
        series.setdefault(gpu, []).append((timestamp_s, power_w))
    for samples in series.values():
        samples.sort()
    return series


def _window(series: dict[int, list[Sample]], start: float | None, end: float | None) -> Sample:
    first_s = min(s[0][0] for s in series.values())
    last_s = max(s[-1][0] for s in series.values())

    def resolve(offset: float | None, default: float) -> float:
        if offset is None:
            return default
        return first_s + offset if offset >= 0 else last_s + offset

    start_s, end_s = resolve(start, first_s), resolve(end, last_s)
    start_s, end_s = max(start_s, first_s), min(end_s, last_s)
    if end_s <= start_s:
        raise ZeusConfigError(
            f"window start={start} end={end} is empty: the log spans {last_s - first_s:.3f} s; "
            "offsets count from its first sample, negative ones from its last"
        )
    return start_s, end_s


def energy_by_gpu(
    log: PowerLog, start: float | None = None, end: float | None = None
) -> dict[int, float]:
    """Joules per GPU over the window."""
    series = read_power_log(log)
    if not series:
        raise ZeusConfigError("power log has no samples; at least 2 per GPU are needed")
    for gpu, samples in series.items():
        if len(samples) < 2:
            raise ZeusConfigError(
                f"power log has {len(samples)} sample of GPU {gpu}; at least 2 per GPU are needed"
            )
    start_s, end_s = _window(series, start, end)
    return {gpu: integrate_j(samples, start_s, end_s) for gpu, samples in sorted(series.items())}


def energy(
    log: PowerLog, start: float | None = None, end: float | None = None, gpu: int | None = None
) -> float:
    """Joules over the window, summed over GPUs (or of GPU ``gpu``)."""
    per_gpu = energy_by_gpu(log, start, end)
    if gpu is None:
        return sum(per_gpu.values())
    if gpu not in per_gpu:
        raise ZeusConfigError(f"GPU {gpu} is not in the power log; it has GPUs {sorted(per_gpu)}")
    return per_gpu[gpu]


def window_s(log: PowerLog, start: float | None = None, end: float | None = None) -> float:
    """Length in seconds of the window ``start``..``end`` of the log (after clipping to the log)."""
    series = read_power_log(log)
    if not series:
        raise ZeusConfigError("power log has no samples; at least 2 per GPU are needed")
    start_s, end_s = _window(series, start, end)
    return end_s - start_s


def avg_power(
    log: PowerLog, start: float | None = None, end: float | None = None, gpu: int | None = None
) -> float:
    """Average watts over the window, summed over GPUs (or of GPU ``gpu``)."""
    rows = read_power_log(log)
    flat = [(t, g, w) for g, samples in rows.items() for t, w in samples]
    return energy(flat, start, end, gpu) / window_s(flat, start, end)


def samples_by_gpu(
    log: PowerLog, start: float | None = None, end: float | None = None
) -> dict[int, int]:
    """Samples per GPU inside the window ``start``..``end`` (edges included)."""
    series = read_power_log(log)
    if not series:
        raise ZeusConfigError("power log has no samples; at least 2 per GPU are needed")
    start_s, end_s = _window(series, start, end)
    return {
        gpu: sum(1 for t, _ in samples if start_s <= t <= end_s)
        for gpu, samples in sorted(series.items())
    }
