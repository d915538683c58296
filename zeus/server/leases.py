"""How long a running trial may stay silent before it counts as failed (its lease).

Every report is a heartbeat: it renews the trial's lease. The lease's length comes from what the job
has shown: the server times the gap between a trial's heartbeats on its own clock (from the batch
size request to the first report, then report to report, so start-up and evaluation count) and keeps
the job's longest. The lease is ``epoch_multiple`` times that, at least ``floor_s`` and at most
``ceiling_s``; before the job has shown a single epoch it is ``hard_cap_s``, which no lease exceeds.
A dead trial of a job with one-minute epochs is so detected in minutes instead of a day.
"""

from __future__ import annotations

from dataclasses import dataclass

from zeus.server.settings import ServerSettings


@dataclass(frozen=True)
class LeasePolicy:
    hard_cap_s: float
    epoch_multiple: float
    floor_s: float
    ceiling_s: float

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> LeasePolicy:
        return cls(
            hard_cap_s=settings.lease_seconds,
            epoch_multiple=settings.lease_epoch_multiple,
            floor_s=settings.lease_floor_seconds,
            ceiling_s=settings.lease_ceiling_seconds,
        )

    def length_s(self, longest_epoch_s: float | None) -> float:
        """The lease of a trial of a job whose longest epoch so far took ``longest_epoch_s``."""
        if longest_epoch_s is None:
            return self.hard_cap_s
        derived = min(self.ceiling_s, max(self.floor_s, self.epoch_multiple * longest_epoch_s))
        return min(self.hard_cap_s, derived)

    def tight(self, longest_epoch_s: float) -> bool:
        """Whether the ceiling (or hard cap) cuts the lease below ``epoch_multiple`` epochs."""
        return self.length_s(longest_epoch_s) < self.epoch_multiple * longest_epoch_s
