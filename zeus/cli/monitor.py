"""`zeus monitor energy` (one measurement window) and `zeus monitor power` (power log to CSV)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.table import Table

from zeus.cli.console import make_console
from zeus.cli.env import GPU_OPTION_HELP
from zeus.cli.options import int_list
from zeus.device.base import GPU

monitor_app = typer.Typer(
    name="monitor",
    help="Measure GPU/CPU energy or log GPU power.",
    no_args_is_help=True,
)


def _wait(duration_s: float | None) -> bool:
    """Sleep until ``duration_s`` passes or Ctrl-C; True if interrupted."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        while deadline is None or time.monotonic() < deadline:
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            time.sleep(max(0.0, left))
    except KeyboardInterrupt:
        return True
    return False


def _replay_note(console: Console, gpus: Sequence[GPU]) -> None:
    names = sorted({g.name for g in gpus if g.capabilities.simulated})
    if names:
        console.print(
            f"[yellow]replay GPU ({', '.join(names)}): figures are replayed from measured "
            "profiles, not measured on hardware[/]"
        )


def _refuse_virtual_time(gpus: Sequence[GPU]) -> None:
    """`zeus monitor` watches from outside the training process; virtual time cannot be seen there."""
    from zeus.errors import ZeusConfigError

    if any(g.capabilities.virtual_time for g in gpus):
        raise ZeusConfigError(
            "--gpu: replay GPUs on virtual time advance only with the training steps marked in the "
            "process that trains, which `zeus monitor` is not; to watch a replay GPU in real time "
            "use --gpu replay:<profile>:wall"
        )


@monitor_app.command("energy")
def energy(
    gpu: str = typer.Option(None, "--gpu", help=GPU_OPTION_HELP),
    gpu_index: list[str] = typer.Option(
        None, "--gpu-index", help="Monitor only these GPUs, e.g. 0,1 (default: all)."
    ),
    duration: float = typer.Option(None, min=0.0, help="Stop after this many seconds."),
) -> None:
    """Measure time and energy from now until Ctrl-C (or --duration), then print it."""
    from zeus.device import get_gpus
    from zeus.monitor import ZeusMonitor

    console = make_console()
    gpus = get_gpus(backend=gpu)
    _refuse_virtual_time(gpus)
    indices = int_list(gpu_index or [], "--gpu-index") or None
    monitor = ZeusMonitor(gpu_indices=indices, gpus=gpus, sync_execution_with="none")
    console.print(
        f"measuring {len(monitor.gpus)} GPU(s) and {len(monitor.cpus)} CPU(s)"
        + (f" for {duration:g} s" if duration is not None else "; Ctrl-C to stop")
    )
    try:
        monitor.begin_window("zeus-monitor-energy")
        _wait(duration)
        m = monitor.end_window("zeus-monitor-energy")
    finally:
        monitor.close()
    table = Table(title=f"Measurement ({m.time_s:.3f} s, method {m.method})")
    table.add_column("device")
    table.add_column("energy J", justify="right")
    table.add_column("avg power W", justify="right")
    rows = [(f"GPU {i}", j) for i, j in m.gpu_energy_j.items()]
    rows += [(f"CPU {i}", j) for i, j in (m.cpu_energy_j or {}).items()]
    rows += [(f"DRAM {i}", j) for i, j in (m.dram_energy_j or {}).items()]
    for device, joules in rows:
        table.add_row(device, f"{joules:.3f}", f"{joules / m.time_s:.2f}" if m.time_s > 0 else "-")
    console.print(table)
    console.print(f"total GPU energy: {m.total_energy_j:.3f} J")
    _replay_note(console, monitor.gpus)


@monitor_app.command("power")
def power(
    out: str = typer.Option(..., "--out", help="CSV to write: timestamp_s,gpu,power_w."),
    interval: float = typer.Option(0.1, min=0.001, help="Seconds between samples (0.1 = 10 Hz)."),
    duration: float = typer.Option(None, min=0.0, help="Stop after this many seconds."),
    gpu: str = typer.Option(None, "--gpu", help=GPU_OPTION_HELP),
) -> None:
    """Log GPU power to a CSV until Ctrl-C (or --duration), then summarise it."""
    from zeus.analyze import avg_power, energy_by_gpu, window_s
    from zeus.device import get_gpus
    from zeus.errors import ZeusConfigError
    from zeus.monitor import PowerMonitor

    console = make_console()
    gpus = get_gpus(backend=gpu)
    if not gpus:
        raise ZeusConfigError(
            "no GPU to monitor; pass --gpu replay:<profile>:wall (or ZEUS_GPU) or run on an "
            "NVIDIA GPU"
        )
    _refuse_virtual_time(gpus)
    console.print(
        f"logging power of {len(gpus)} GPU(s) every {interval:g} s to {out}"
        + (f" for {duration:g} s" if duration is not None else "; Ctrl-C to stop")
    )
    with PowerMonitor(gpus, interval_s=interval, csv_path=out) as monitor:
        _wait(duration)
    samples = sum(len(s) for s in monitor.timeline().values())
    console.print(f"wrote {samples} samples to {out}")
    try:
        per_gpu = energy_by_gpu(out)
        span_s = window_s(out)
    except ZeusConfigError as e:
        console.print(f"too short to integrate: {e}")
        return
    for index, joules in per_gpu.items():
        console.print(f"GPU {index}: {joules:.3f} J")
    console.print(
        f"total {sum(per_gpu.values()):.3f} J over {span_s:.3f} s, {avg_power(out):.2f} W"
    )
    _replay_note(console, gpus)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(monitor_app, name="monitor")
