"""`zeus analyze`: energy and average power of a power log."""

from __future__ import annotations

import typer
from rich.table import Table

from zeus.cli.console import make_console


def analyze(
    log: str = typer.Argument(..., help="Power log CSV (timestamp_s,gpu,power_w), or .csv.gz."),
    start: float = typer.Option(
        None, help="Window start, seconds from the first sample (negative: from the last)."
    ),
    end: float = typer.Option(
        None, help="Window end, seconds from the first sample (negative: from the last)."
    ),
) -> None:
    """Integrate a power log (trapezoid rule): energy per GPU and average power over a window."""
    from zeus.analyze import energy_by_gpu, read_power_log, samples_by_gpu, window_s

    series = read_power_log(log)
    flat = [(t, g, w) for g, samples in series.items() for t, w in samples]
    per_gpu = energy_by_gpu(flat, start, end)
    span_s = window_s(flat, start, end)
    counts = samples_by_gpu(flat, start, end)
    table = Table(title=f"{log}: {span_s:.3f} s window")
    table.add_column("GPU")
    table.add_column("samples in window", justify="right")
    table.add_column("energy J", justify="right")
    table.add_column("avg power W", justify="right")
    for index, joules in per_gpu.items():
        table.add_row(str(index), str(counts[index]), f"{joules:.3f}", f"{joules / span_s:.2f}")
    total_j = sum(per_gpu.values())
    table.add_row("all", str(sum(counts.values())), f"{total_j:.3f}", f"{total_j / span_s:.2f}")
    make_console().print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("analyze")(analyze)
