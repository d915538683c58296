"""What a finished power-limit search found, as numbers and as the table the examples print.

```python
from zeus.optimizer.power_limit import ProfileReport

report = ProfileReport.of(plo)  # plo: a GlobalPowerLimitOptimizer that chose a limit
print(report.format())
print(f"{report.energy_saved_fraction:.1%} less energy per step than at the maximum limit")
```

Every figure compares the chosen limit with the highest measured limit (the GPUs' maximum, where
the search starts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zeus.errors import ZeusConfigError
from zeus.optimizer.power_limit.selectors import PowerLimitMeasurement

if TYPE_CHECKING:
    from zeus.optimizer.power_limit.optimizer import GlobalPowerLimitOptimizer

HEADER = "power limit [W]  time/step [ms]  energy/step [J]  avg power [W]"


@dataclass(frozen=True)
class ProfileReport:
    """Per-limit measurements (highest limit first) and the chosen limit against the maximum."""

    rows: tuple[PowerLimitMeasurement, ...]
    chosen_power_limit_w: int

    def __post_init__(self) -> None:
        if not self.rows:
            raise ZeusConfigError("rows: a report needs at least one measured power limit")
        limits_w = [m.power_limit_w for m in self.rows]
        if limits_w != sorted(set(limits_w), reverse=True):
            raise ZeusConfigError(
                f"rows: power limits must be distinct and highest first, got {limits_w}"
            )
        if self.chosen_power_limit_w not in limits_w:
            raise ZeusConfigError(
                f"chosen_power_limit_w: must be one of the measured limits {limits_w}, "
                f"got {self.chosen_power_limit_w}"
            )

    @classmethod
    def from_measurements(
        cls, measurements: Iterable[PowerLimitMeasurement], chosen_power_limit_w: int
    ) -> ProfileReport:
        """A report from measurements in any order."""
        rows = sorted(measurements, key=lambda m: m.power_limit_w, reverse=True)
        return cls(rows=tuple(rows), chosen_power_limit_w=chosen_power_limit_w)

    @classmethod
    def of(cls, plo: GlobalPowerLimitOptimizer) -> ProfileReport:
        """The report of an optimizer that has chosen a limit (``plo.chosen_power_limit_w``)."""
        if plo.chosen_power_limit_w is None:
            raise ZeusConfigError(
                f"plo: no power limit chosen yet (state {plo.state!r}); report after profiling"
            )
        return cls.from_measurements(plo.measurements.values(), plo.chosen_power_limit_w)

    @property
    def max_power_limit_w(self) -> int:
        """The highest measured limit: the reference every saving is relative to."""
        return self.rows[0].power_limit_w

    @property
    def chosen(self) -> PowerLimitMeasurement:
        return next(m for m in self.rows if m.power_limit_w == self.chosen_power_limit_w)

    @property
    def at_max(self) -> PowerLimitMeasurement:
        return self.rows[0]

    @property
    def energy_saved_fraction(self) -> float:
        """1 − energy per step at the chosen limit / at the maximum (negative: it costs more)."""
        return 1.0 - self.chosen.energy_per_step_j / self.at_max.energy_per_step_j

    @property
    def time_change_fraction(self) -> float:
        """Time per step at the chosen limit / at the maximum − 1 (positive: slower)."""
        return self.chosen.time_per_step_s / self.at_max.time_per_step_s - 1.0

    def lines(self) -> list[str]:
        """The table, the chosen limit, and the energy per step saved against the maximum."""
        table = [
            f"{m.power_limit_w:>15}  {m.time_per_step_s * 1e3:>14.2f}"
            f"  {m.energy_per_step_j:>15.4f}  {m.avg_power_w:>13.1f}"
            for m in self.rows
        ]
        chosen_w, max_w = self.chosen_power_limit_w, self.max_power_limit_w
        return [
            HEADER,
            *table,
            f"chosen power limit: {chosen_w} W (maximum {max_w} W)",
            f"energy per step: {self.at_max.energy_per_step_j:.4f} J at {max_w} W -> "
            f"{self.chosen.energy_per_step_j:.4f} J at {chosen_w} W: "
            f"saved {self.energy_saved_fraction * 100:.1f}%, "
            f"time per step {self.time_change_fraction * 100:+.1f}%",
        ]

    def format(self) -> str:
        """``lines()`` joined by newlines (no trailing newline)."""
        return "\n".join(self.lines())
