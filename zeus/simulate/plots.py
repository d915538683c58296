"""PNG plots of a simulation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zeus.simulate.job_run import HistoryEntry
from zeus.simulate.report import Config, default_config, expected_config, oracle_config, recurrences
from zeus.simulate.traces import WorkloadTable

if TYPE_CHECKING:
    from zeus.simulate.runs import GroupSummary
    from zeus.simulate.sweep import CellResult


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(
    table: WorkloadTable, history: list[HistoryEntry], eta_knob: float, path: str | Path
) -> Path:
    """Cost of every recurrence against Default and Oracle, with the chosen batch size and limit."""
    plt = _pyplot()
    recs = recurrences(history)
    x = np.arange(1, len(recs) + 1)
    default, oracle = default_config(table, eta_knob), oracle_config(table, eta_knob)
    fig, (ax_cost, ax_bs) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=[3, 2])
    ax_cost.plot(x, [r.cost for r in recs], ".-", lw=0.8, label="simulated recurrence")
    ax_cost.axhline(default.cost, color="tab:red", ls="--", label=_label("Default", default))
    ax_cost.axhline(oracle.cost, color="tab:green", ls="--", label=_label("Oracle", oracle))
    ax_cost.set_yscale("log")
    ax_cost.set_ylabel(f"cost (eta={eta_knob:g})")
    ax_cost.legend(fontsize=8)
    ax_cost.set_title(f"{table.job.name} on {table.gpu}")
    ax_bs.step(x, [r.batch_size for r in recs], where="mid", color="tab:blue")
    ax_bs.set_yscale("log", base=2)
    ax_bs.set_ylabel("batch size", color="tab:blue")
    ax_pl = ax_bs.twinx()
    ax_pl.plot(x, [r.power_limit for r in recs], "x", ms=4, color="tab:orange")
    ax_pl.set_ylabel("power limit (W)", color="tab:orange")
    ax_bs.set_xlabel("recurrence")
    return _save(fig, plt, path)


def plot_configs(
    table: WorkloadTable, history: list[HistoryEntry], eta_knob: float, path: str | Path
) -> Path:
    """Expected energy vs time of every (batch size, limit); Default, Oracle and the final choice."""
    plt = _pyplot()
    configs = [
        expected_config(table, bs, pl, eta_knob)
        for i, bs in enumerate(table.batch_sizes)
        for j, pl in enumerate(table.power_limits)
        if not np.isnan(table.epoch_time_s[i, j]) and np.isfinite(table.run_epochs[i]).any()
    ]
    configs = [c for c in configs if np.isfinite(c.cost)]
    fig, ax = plt.subplots(figsize=(7, 5))
    points = ax.scatter(
        [c.time_s for c in configs],
        [c.energy_j for c in configs],
        c=np.log2([c.batch_size for c in configs]),
        cmap="viridis",
        s=14,
    )
    fig.colorbar(points, ax=ax, label="log2(batch size)")
    final = recurrences(history)[-1]
    marks = [
        (default_config(table, eta_knob), "s", "tab:red", "Default"),
        (oracle_config(table, eta_knob), "*", "tab:green", "Oracle"),
        (
            expected_config(table, final.batch_size, final.power_limit, eta_knob),
            "x",
            "black",
            "chosen",
        ),
    ]
    for cfg, marker, color, name in marks:
        ax.scatter(
            [cfg.time_s], [cfg.energy_j], marker=marker, s=120, color=color, label=_label(name, cfg)
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("expected time to target (s)")
    ax.set_ylabel("expected energy to target (J)")
    ax.set_title(f"Every configuration of {table.job.name} on {table.gpu}")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def plot_sweep(results: Sequence[CellResult], title: str, path: str | Path) -> Path:
    """Energy saved over the last 10 recurrences per workload (bars per GPU): mean over seeds, the
    whiskers spanning the seeds' lowest to highest."""
    plt = _pyplot()
    saved: dict[tuple[str, str], list[float]] = {}
    for r in results:
        saved.setdefault((r.task.dataset, r.task.gpu), []).append(
            100 * r.metrics.last10_energy_saving
        )
    workloads = list(dict.fromkeys(w for w, _ in saved))
    gpus = list(dict.fromkeys(g for _, g in saved))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(workloads)), 4.5))
    width = 0.8 / len(gpus)
    for k, gpu in enumerate(gpus):
        cells = [saved.get((w, gpu), [np.nan]) for w in workloads]
        means = np.array([np.mean(c) for c in cells])
        spread = [means - [min(c) for c in cells], [max(c) for c in cells] - means]
        x = np.arange(len(workloads)) + (k - (len(gpus) - 1) / 2) * width
        ax.bar(x, means, width, yerr=spread, capsize=2, label=gpu)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(workloads)), workloads, rotation=15)
    ax.set_ylabel("energy saved vs Default, last 10 (%)")
    ax.set_title(title)
    ax.legend(title="GPU", fontsize=8)
    return _save(fig, plt, path)


def plot_cluster(summaries: Sequence[GroupSummary], title: str, path: str | Path) -> Path:
    """Energy saved and time change of every group against running all its jobs at Default."""
    plt = _pyplot()
    names = [s.group for s in summaries]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names)), 4.5))
    ax.bar(x - 0.2, [100 * s.energy_saving for s in summaries], 0.4, label="energy saved")
    ax.bar(x + 0.2, [100 * s.time_change for s in summaries], 0.4, label="time change")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("vs Default (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def _label(name: str, cfg: Config) -> str:
    return f"{name} (bs {cfg.batch_size}, {cfg.power_limit} W)"


def _save(fig: object, plt: object, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=110)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[attr-defined]
    return path
