"""An optional log of every finished `ZeusMonitor` window: CSV or JSON lines, chosen by the suffix.

One record per window that ended (cancelled windows are not logged), appended as it ends, so the log
survives a crash and a restarted job adds to it. Fields: ``window`` (name), ``start_unix_s`` and
``end_unix_s`` (wall-clock edges), ``time_s`` (the window's time: virtual on replay GPUs),
``method``, then energy in joules: ``gpu_energy_j`` (sum over GPUs) and one ``gpu<i>_energy_j`` per
monitored GPU, ``cpu<i>_energy_j`` and ``dram<i>_energy_j`` per monitored CPU (empty where not
measured). JSON lines hold the same fields, with per-device energy as objects keyed by index::

    {"window": "epoch", "start_unix_s": ..., "end_unix_s": ..., "time_s": 61.2,
     "method": "counter", "gpu_energy_j": 14.2e3, "gpu": {"0": 14.2e3},
     "cpu": {"0": 3.1e3}, "dram": {"0": 410.0}}
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeus.errors import ZeusConfigError

if TYPE_CHECKING:
    from zeus.monitor.energy import Measurement

FORMATS = (".csv", ".jsonl")


class WindowLog:
    """Appends one record per finished window to ``path`` (``.csv`` or ``.jsonl``)."""

    def __init__(
        self, path: str | os.PathLike[str], gpu_indices: list[int], cpu_indices: list[int]
    ) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        if self.format not in FORMATS:
            raise ZeusConfigError(
                f"window_log must end in {' or '.join(FORMATS)}, got {str(path)!r}"
            )
        self.gpu_indices = list(gpu_indices)
        self.cpu_indices = list(cpu_indices)
        self.columns = [
            "window",
            "start_unix_s",
            "end_unix_s",
            "time_s",
            "method",
            "gpu_energy_j",
            *(f"gpu{i}_energy_j" for i in self.gpu_indices),
            *(f"cpu{i}_energy_j" for i in self.cpu_indices),
            *(f"dram{i}_energy_j" for i in self.cpu_indices),
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == ".csv":
            self._check_or_write_header()

    def _check_or_write_header(self) -> None:
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as file:
                found = next(csv.reader(file), [])
            if found != self.columns:
                raise ZeusConfigError(
                    f"window_log {str(self.path)!r} has columns {','.join(found)}; this monitor "
                    f"writes {','.join(self.columns)}: use another file"
                )
            return
        with self.path.open("w", newline="") as file:
            csv.writer(file).writerow(self.columns)

    def write(self, name: str, start_unix_s: float, end_unix_s: float, m: Measurement) -> None:
        """Append the record of window ``name``."""
        if self.format == ".jsonl":
            record: dict[str, Any] = {
                "window": name,
                "start_unix_s": start_unix_s,
                "end_unix_s": end_unix_s,
                "time_s": m.time_s,
                "method": m.method,
                "gpu_energy_j": m.total_energy_j,
                "gpu": {str(i): j for i, j in m.gpu_energy_j.items()},
                "cpu": _keyed(m.cpu_energy_j),
                "dram": _keyed(m.dram_energy_j),
            }
            with self.path.open("a") as file:
                file.write(json.dumps(record) + "\n")
            return
        cpu, dram = m.cpu_energy_j or {}, m.dram_energy_j or {}
        row = [
            name,
            f"{start_unix_s:.6f}",
            f"{end_unix_s:.6f}",
            f"{m.time_s:.6f}",
            m.method,
            f"{m.total_energy_j:.6f}",
            *(_cell(m.gpu_energy_j.get(i)) for i in self.gpu_indices),
            *(_cell(cpu.get(i)) for i in self.cpu_indices),
            *(_cell(dram.get(i)) for i in self.cpu_indices),
        ]
        with self.path.open("a", newline="") as file:
            csv.writer(file).writerow(row)


def _keyed(energy: dict[int, float] | None) -> dict[str, float] | None:
    return None if energy is None else {str(i): j for i, j in energy.items()}


def _cell(joules: float | None) -> str:
    return "" if joules is None else f"{joules:.6f}"
