"""`zeus profile`: measure your training script and write traces for `zeus simulate single`."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.table import Table

from zeus.cli.console import make_console
from zeus.cli.options import alias, pick


def _ints(text: str, name: str) -> tuple[int, ...]:
    from zeus.errors import ZeusConfigError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ZeusConfigError(f"{name} must be comma-separated integers, got {text!r}") from None


def profile(
    command: str = typer.Option(
        ...,
        "--command",
        help="Training command; must use {bs} (and may use {lr}, {seed}, {epochs}).",
    ),
    batch_sizes: str = typer.Option(..., "--batch-sizes", help="Candidates, e.g. 32,64,128."),
    samples_per_epoch: int = typer.Option(
        ..., "--samples-per-epoch", help="Training samples per epoch (for time per epoch)."
    ),
    target_metric: float = typer.Option(..., "--target-metric", help="Validation metric to reach."),
    max_epochs: int = typer.Option(100, "--max-epochs", help="Give up on a run after this many."),
    dataset: str = typer.Option("custom", help="Dataset name written into the traces."),
    network: str = typer.Option("custom", help="Network name written into the traces."),
    optimizer: str = typer.Option("adam", help="Also picks the learning-rate scaling rule."),
    default_batch_size: int | None = typer.Option(
        None, "--default-batch-size", help="b0, the batch size --learning-rate is for."
    ),
    learning_rate: float | None = typer.Option(
        None, "--learning-rate", help="Learning rate at --default-batch-size."
    ),
    runs: int = typer.Option(1, "--runs", min=1, help="Seeds per batch size ({seed} = 1..N)."),
    profile_params: str = typer.Option(
        None, "--profile-params", help="warmup,measured steps per power limit. [default: 2,5]"
    ),
    workdir: Path = typer.Option(Path("."), "--workdir", help="Where the command runs."),
    gpu_name: str | None = typer.Option(
        None, "--gpu-name", help="<gpu> in summary_power_<gpu>.csv (default: from the GPU model)."
    ),
    out: Path = typer.Option(Path("zeus-profile"), "--out", help="Folder for the traces and logs."),
    show_output: bool = typer.Option(False, "--show-output", help="Show the runs' output."),
    default_bs: int | None = alias("--default-bs"),
    lr: float | None = alias("--lr"),
    steps: str | None = alias("--steps"),
) -> None:
    """Profile a training script over batch sizes × power limits; write a train/power trace pair."""

    from zeus.device import gpu_backend
    from zeus.run.env import parse_profile_params
    from zeus.simulate.profiler import ProfiledRun, ProfileSpec, profile_workload

    console = make_console()
    default_bs = pick(default_batch_size, default_bs, "--default-batch-size", "--default-bs", None)
    lr = pick(learning_rate, lr, "--learning-rate", "--lr", None)
    steps = pick(profile_params, steps, "--profile-params", "--steps", "2,5")
    spec = ProfileSpec(
        command=tuple(shlex.split(command)),
        dataset=dataset,
        network=network,
        optimizer=optimizer,
        batch_sizes=_ints(batch_sizes, "--batch-sizes"),
        target_metric=target_metric,
        max_epochs=max_epochs,
        samples_per_epoch=samples_per_epoch,
        workdir=workdir,
        default_bs=default_bs,
        default_lr=lr,
        runs=runs,
        profile_params=parse_profile_params(steps, "--profile-params"),
    )
    backend = gpu_backend()
    if backend.startswith("replay:"):
        console.print(
            f"[yellow]GPU: replay GPU {backend[7:]}: the traces hold SIMULATED figures.[/]"
        )

    def on_run(run: ProfiledRun) -> None:
        outcome = f"reached in {run.epochs} epochs" if run.reached else "did not reach the target"
        console.print(f"batch size {run.batch_size} run {run.run}: {outcome}")

    echo = (lambda line: console.print(f"[dim]│ {line}[/]", markup=False)) if show_output else None
    result = profile_workload(spec, out, gpu_name=gpu_name, echo=echo, on_run=on_run)
    table = Table(title=f"Power trace ({result.gpu})", title_justify="left")
    for name in ("batch size", "power limit (W)", "time/epoch (s)", "avg power (W)"):
        table.add_column(name, justify="right")
    for row in result.power_rows:
        table.add_row(
            str(row["batch_size"]),
            str(row["power_limit"]),
            f"{row['time_per_epoch']:.3f}",
            f"{row['average_power']:.1f}",
        )
    console.print(table)
    for batch_size, limits in result.missing_limits.items():
        console.print(
            f"[yellow]batch size {batch_size}: limits {limits} W not measured — its runs reached "
            "the target before profiling finished (lower --profile-params).[/]"
        )
    console.print(f"Wrote {result.train_trace} and {result.power_trace}. What would Zeus save?")
    b0 = default_bs or spec.batch_sizes[0]
    console.print(
        f"  zeus simulate single --dataset {dataset} --network {network} --optimizer {optimizer} "
        f"--target-metric {target_metric} --max-epochs {max_epochs} --default-batch-size {b0} "
        f"--train-trace {result.train_trace} --power-trace {result.power_trace}"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("profile")(profile)
