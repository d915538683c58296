"""`zeus demo`: the main job — a recurring training job optimized end to end by Zeus."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from zeus.cli.console import make_console
from zeus.cli.series_view import SeriesView
from zeus.demo.job import DEMO_PROFILE


def _prepare_out(out: Path) -> None:
    """Start from a clean output folder; only a previous demo's folders are ever removed."""
    from zeus.errors import ZeusConfigError

    if out.exists() and any(out.iterdir()):
        if not (out / "series" / "series.json").exists() and not (out / "default").exists():
            raise ZeusConfigError(f"--out {out} is not empty and not a previous zeus demo folder")
        for name in ("default", "series"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def demo(
    out: Path = typer.Option(Path("zeus-demo"), "--out", help="Folder for logs, history and plot."),
    recurrences: int = typer.Option(12, "--recurrences", min=1, help="Recurrences of the job."),
    quick: bool = typer.Option(False, "--quick", help="Only 6 recurrences."),
    seed: int = typer.Option(1, "--seed", help="Seed of the batch-size policy and the runs."),
    profile: str = typer.Option(
        DEMO_PROFILE, "--profile", help="Replay GPU profile when there is no NVIDIA GPU."
    ),
    server: str | None = typer.Option(
        None, "--server", help="Get batch sizes from this BSO server (zeus serve) instead."
    ),
    show_output: bool = typer.Option(False, "--show-output", help="Show the jobs' own output."),
) -> None:
    """Run a recurring training job with Zeus and show the energy and time it saves."""
    from zeus.demo.job import (
        DEMO_BATCH_SIZES,
        DEMO_BETA,
        DEMO_PROFILE_PARAMS,
        choose_gpu,
        demo_job,
    )
    from zeus.demo.savings import compute_savings, plot_demo
    from zeus.extras import require
    from zeus.policy import DEFAULT_POLICY, DefaultBatchSizeOptimizer, make_batch_size_optimizer
    from zeus.policy.base import BatchSizeOptimizer
    from zeus.run.master import JobChoosesBatchSize, ZeusMaster

    require("demo", "zeus demo")
    if server is not None:
        _check_server(server)
    started = time.monotonic()
    console = make_console()
    num_recurrence = 6 if quick else recurrences
    out = out.resolve()
    _prepare_out(out)
    gpu = choose_gpu(profile)
    bso_job_id = f"zeus-demo-{uuid.uuid4().hex[:8]}"
    job = demo_job(out, server, bso_job_id)
    env = {"ZEUS_GPU": gpu.backend}
    console.rule("[bold]zeus demo")
    console.print(
        f"Recurring job: a small CNN on scikit-learn digits, trained for real on the "
        f"{'CPU' if gpu.simulated else 'GPU'} to {job.target_metric:.0%} test accuracy, "
        f"{num_recurrence} recurrences; candidate batch sizes {DEMO_BATCH_SIZES}, "
        f"default {job.default_bs}."
    )
    console.print(f"GPU: [bold]{gpu.description}[/].")
    echo = (lambda line: console.print(f"[dim]│ {line}[/]", markup=False)) if show_output else None

    console.print(f"Measuring Default: batch size {job.default_bs} at the maximum power limit …")
    default_state = ZeusMaster(
        DefaultBatchSizeOptimizer(),
        out / "default",
        beta_knob=None,
        use_optimal_pl=False,
        seed=seed,
        env=env,
        echo=echo,
    ).run(demo_job(out), DEMO_BATCH_SIZES, 1)
    default = default_state.runs[-1]
    console.print(
        f"Default: {default.energy_j:,.0f} J, {default.time_s:.1f} s, cost {default.cost:,.0f} "
        f"({default.epochs} epochs at {default.power_limit_w} W)"
    )

    policy: BatchSizeOptimizer = make_batch_size_optimizer(DEFAULT_POLICY, seed)
    title = f"Zeus: {DEFAULT_POLICY} batch sizes, JIT power limits"
    if server is not None:
        policy = JobChoosesBatchSize()  # each run asks the server; the server applies beta
        title = (
            f"Zeus: batch sizes from the BSO server {server} (job {bso_job_id}), JIT power limits"
        )
        console.print(
            f"Batch sizes come from the BSO server at [bold]{server}[/], job {bso_job_id}."
        )
    view = SeriesView(console, num_recurrence, title)
    master = ZeusMaster(
        policy,
        out / "series",
        beta_knob=None if server else DEMO_BETA,
        profile_params=DEMO_PROFILE_PARAMS,
        seed=seed,
        env=env,
        echo=echo,
        listener=view,
    )
    state = view.show(lambda: master.run(job, DEMO_BATCH_SIZES, num_recurrence))
    recs = state.recurrences()
    savings = compute_savings(default, recs, last_n=min(5, len(recs)))
    _print_savings(console, savings, gpu.simulated)
    plot_path = out / "demo.png"
    plot_demo(default, recs, plot_path, gpu.simulated)
    console.print(f"Plot: {plot_path}   History: {out / 'series' / 'series.json'}")
    console.print(f"[dim]Finished in {time.monotonic() - started:.0f} s.[/]")


def _check_server(url: str) -> None:
    """Fail before the first run, not after three crashed ones, when no server answers."""
    import httpx

    from zeus.errors import ZeusConfigError

    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=5.0).raise_for_status()
    except httpx.HTTPError as e:
        raise ZeusConfigError(
            f"--server {url}: no BSO server answers at /health ({type(e).__name__}: {e}); "
            "start one with zeus serve"
        ) from None


def _print_savings(console: Console, s: object, simulated: bool) -> None:
    from zeus.demo.savings import Savings

    assert isinstance(s, Savings)
    table = Table(title="Zeus vs Default (per recurrence)", title_justify="left")
    for name in ("", "energy (J)", "time (s)", "cost"):
        table.add_column(name, justify="right")
    table.add_row(
        "Default (b0, max power limit)",
        f"{s.default_energy_j:,.0f}",
        f"{s.default_time_s:.2f}",
        f"{s.default_cost:,.0f}",
    )
    table.add_row(
        f"Zeus, mean of last {s.last_n}",
        f"{s.last_energy_j:,.0f}",
        f"{s.last_time_s:.2f}",
        f"{s.last_cost:,.0f}",
    )
    table.add_row(
        "Zeus, mean of all (incl. exploration)", f"{s.all_energy_j:,.0f}", f"{s.all_time_s:.2f}", ""
    )
    console.print(table)
    console.print(
        f"[bold green]Energy saved: {s.energy_saved_last:.1%}[/] over the last {s.last_n} "
        f"recurrences ({s.energy_saved_all:.1%} over all, exploration included); "
        f"time {s.time_change_last:+.1%}; cost {-s.cost_saved_last:+.1%}."
    )
    if simulated:
        console.print(
            "[yellow]Energy and time come from the replay GPU: the training really ran on this "
            "machine's CPU, and the replay GPU scaled its time and power as the profiled GPU would "
            "(see docs/replay-gpu.md).[/]"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("demo")(demo)
