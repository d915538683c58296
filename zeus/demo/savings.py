"""What `zeus demo` reports: the savings against the Default configuration, and the plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zeus.run.history import RecurrenceSummary, RunRecord


@dataclass(frozen=True)
class Savings:
    """Zeus's recurrences against the Default configuration."""

    default_energy_j: float
    default_time_s: float
    default_cost: float
    last_energy_j: float
    last_time_s: float
    last_cost: float
    last_n: int
    all_energy_j: float
    all_time_s: float

    @property
    def energy_saved_last(self) -> float:
        return 1.0 - self.last_energy_j / self.default_energy_j

    @property
    def time_change_last(self) -> float:
        return self.last_time_s / self.default_time_s - 1.0

    @property
    def cost_saved_last(self) -> float:
        return 1.0 - self.last_cost / self.default_cost

    @property
    def energy_saved_all(self) -> float:
        return 1.0 - self.all_energy_j / self.default_energy_j


def compute_savings(
    default: RunRecord, recurrences: list[RecurrenceSummary], last_n: int
) -> Savings:
    """Mean per-recurrence energy/time/cost (failed tries included) vs one Default run."""
    last = recurrences[-last_n:]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    return Savings(
        default_energy_j=default.energy_j or 0.0,
        default_time_s=default.time_s or 0.0,
        default_cost=default.cost or 0.0,
        last_energy_j=mean([r.energy_j for r in last]),
        last_time_s=mean([r.time_s for r in last]),
        last_cost=mean([r.cost for r in last]),
        last_n=len(last),
        all_energy_j=mean([r.energy_j for r in recurrences]),
        all_time_s=mean([r.time_s for r in recurrences]),
    )


def plot_demo(
    default: RunRecord, recurrences: list[RecurrenceSummary], path: Path, simulated: bool
) -> None:
    """Cost per recurrence against Default (top) and the chosen configurations (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.recurrence for r in recurrences]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    colors = ["tab:green" if len(r.runs) == 1 else "tab:orange" for r in recurrences]
    top.bar(x, [r.cost for r in recurrences], color=colors)
    top.axhline(
        default.cost or 0.0, color="black", ls="--", label="Default (b0 at max power limit)"
    )
    top.set_ylabel("cost per recurrence")
    top.legend(fontsize=8)
    final = [r.final for r in recurrences]
    bottom.plot(x, [r.batch_size for r in final], "o-", label="batch size")
    bottom.set_yscale("log", base=2)
    bottom.set_ylabel("batch size")
    for r in final:
        if r.power_limit_w is not None:
            bottom.annotate(
                f"{r.power_limit_w} W",
                (r.recurrence, r.batch_size),
                fontsize=7,
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
            )
    bottom.set_xlabel("recurrence (orange: needed retries)")
    source = (
        "replay GPU (simulated energy and time)" if simulated else "measured on this machine's GPU"
    )
    fig.suptitle(f"zeus demo: cost and chosen configuration per recurrence — {source}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
