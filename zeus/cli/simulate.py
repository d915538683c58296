"""`zeus simulate single | sweep | cluster`: the trace-driven simulator from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from zeus.cli.console import make_console
from zeus.cli.options import alias, name_list, pick
from zeus.policy.registry import DEFAULT_POLICY, policy_names

simulate_app = typer.Typer(
    name="simulate",
    help="Replay the published traces to see what Zeus saves, before spending GPU time.",
    no_args_is_help=True,
)

POLICY_HELP = (
    f"Batch-size policy: {policy_names()} (pruning-gts is the paper's), "
    "or package.module:Class for your own."
)
TRACE_HELP = (
    "GPU whose published power trace to replay (a40, p100, rtx6000, v100), or your power-trace CSV."
)
DATASETS_HELP = "Workloads, comma-separated, or all. [default: all]"
ETA_HELP = "Weight of energy in the cost, in [0, 1] (0: time only, 1: energy only)."
BETA_HELP = "Stop a run once it costs beta x the cheapest run so far (> 0; inf: never)."


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _change(x: float) -> str:
    return f"{x:+.1%}"


def _check_out(out: Path | None) -> None:
    from zeus.errors import ZeusConfigError

    if out is not None and out.suffix not in (".csv", ".json"):
        raise ZeusConfigError(f"--out must end in .csv or .json, got {out.name}")


@simulate_app.command("single")
def single(
    dataset: str = typer.Option(
        "cifar100",
        help="Workload (cifar100, imagenet, squad, librispeech, movielens-1m, sentiment140).",
    ),
    network: str | None = typer.Option(None, help="Network; default: the workload's."),
    optimizer: str = typer.Option(None, help="Optimizer; default: the workload's."),
    target_metric: float = typer.Option(
        None, "--target-metric", help="Target; default: the workload's."
    ),
    max_epochs: int = typer.Option(
        None, "--max-epochs", help="Epoch cap; default: the workload's."
    ),
    default_batch_size: int | None = typer.Option(
        None, "--default-batch-size", help="b0; default: the workload's (capped to the trace)."
    ),
    power_trace: str | None = typer.Option(
        None, "--power-trace", help=TRACE_HELP + " [default: v100]"
    ),
    eta_knob: float = typer.Option(0.5, "--eta-knob", help=ETA_HELP),
    beta_knob: float = typer.Option(2.0, "--beta-knob", help=BETA_HELP),
    seed: int = typer.Option(1, help="Seed of the policy and of the trace sampling."),
    recurrences: int | None = typer.Option(
        None, "--recurrences", help="Default: 2 x |batch sizes| x |limits|."
    ),
    policy: str = typer.Option(DEFAULT_POLICY, help=POLICY_HELP),
    train_trace: str = typer.Option(
        None, "--train-trace", help="Your train-trace CSV (default: bundled)."
    ),
    out: Path = typer.Option(None, help="Write every run to this .csv or .json file."),
    plot: Path = typer.Option(
        None, help="Write PNG plots to PREFIX-history.png and PREFIX-configs.png."
    ),
    model: str | None = alias("--model"),
    b0: int | None = alias("--b0"),
    gpu: str | None = alias("--gpu"),
    num_recurrence: int | None = alias("--num-recurrence"),
) -> None:
    """Simulate one recurring job on one GPU and compare it with Default and Oracle."""
    from zeus.simulate.runs import make_job, simulate_single, write_records

    _check_out(out)
    network = pick(network, model, "--network", "--model", None)
    b0 = pick(default_batch_size, b0, "--default-batch-size", "--b0", None)
    trace = _trace(pick(power_trace, gpu, "--power-trace", "--gpu", "v100"))
    recurrences = pick(recurrences, num_recurrence, "--recurrences", "--num-recurrence", None)
    job = make_job(dataset.lower(), network, optimizer, target_metric, max_epochs, b0, train_trace)
    r = simulate_single(
        job, trace, policy=policy, seed=seed, eta_knob=eta_knob, beta_knob=beta_knob,
        num_recurrence=recurrences, train_trace=train_trace,
    )  # fmt: skip
    console = make_console()
    m, t = r.metrics, r.table
    console.print(
        f"[bold]{t.job.name}[/] on [bold]{t.gpu}[/], policy {policy}, seed {seed}, eta {eta_knob:g}, "
        f"beta {beta_knob:g}: {m.num_recurrence} recurrences, {len(r.history)} runs"
    )
    configs = Table(title="Configurations (expected until the target is reached)")
    for col in ("", "batch size", "power limit W", "energy J", "time s", "cost"):
        configs.add_column(col, justify="right")
    for name, c in (("Default", r.default), ("Oracle", r.oracle), ("last chosen", r.chosen)):
        configs.add_row(
            name, str(c.batch_size), str(c.power_limit),
            f"{c.energy_j:,.0f}", f"{c.time_s:,.0f}", f"{c.cost:,.0f}",
        )  # fmt: skip
    console.print(configs)
    results = Table(title="Against Default")
    results.add_column("metric")
    results.add_column("value", justify="right")
    rows = [
        ("energy saved, last 10", _pct(m.last10_energy_saving)),
        ("time change, last 10", _change(m.last10_time_change)),
        ("energy saved, all", _pct(m.all_energy_saving)),
        ("time change, all", _change(m.all_time_change)),
        ("cumulative regret (Oracle runs)", f"{m.cum_regret:.2f}"),
        ("Default's cumulative regret", f"{m.default_cum_regret:.2f}"),
        ("within 5% of Oracle from recurrence", str(m.conv_rec) if m.conv_rec else "never settled"),
    ]
    for k, v in rows:
        results.add_row(k, v)
    console.print(results)
    if out is not None:
        write_records(r.history, out, {"job": t.job.name, "gpu": t.gpu, "metrics": m.as_dict()})
        console.print(f"wrote {len(r.history)} runs to {out}")
    if plot is not None:
        from zeus.simulate.plots import plot_configs, plot_history

        a = plot_history(t, r.history, eta_knob, f"{plot}-history.png")
        b = plot_configs(t, r.history, eta_knob, f"{plot}-configs.png")
        console.print(f"wrote {a} and {b}")


def _trace(value: str) -> str:
    """A bundled power trace's name in lower case; a path as given."""
    from zeus.simulate.traces import GPUS

    return value.lower() if value.lower() in GPUS else value


@simulate_app.command("sweep")
def sweep(
    dataset: str | None = typer.Option(None, "--dataset", help=DATASETS_HELP),
    power_trace: str | None = typer.Option(
        None,
        "--power-trace",
        help="GPUs whose power traces to replay (a40, p100, rtx6000, "
        "v100), comma-separated, or all. [default: all]",
    ),
    seeds: str = typer.Option(
        "10", help="Seeds per (workload, GPU): a count N (seeds 1-N) or a range such as 41-60."
    ),
    policy: str = typer.Option(DEFAULT_POLICY, help=POLICY_HELP),
    eta_knob: float = typer.Option(0.5, "--eta-knob", help=ETA_HELP),
    beta_knob: float = typer.Option(2.0, "--beta-knob", help=BETA_HELP),
    processes: int = typer.Option(None, min=1, help="Worker processes (default: all CPUs)."),
    out: Path = typer.Option(None, help="Write per-seed metrics to this .csv or .json file."),
    plot: Path = typer.Option(None, help="Write a PNG plot to PREFIX-sweep.png."),
    datasets: str | None = alias("--datasets"),
    gpus: str | None = alias("--gpus"),
) -> None:
    """Simulate workloads x GPUs x seeds in parallel; print the mean of each cell."""
    from rich.progress import Progress

    from zeus.simulate.runs import write_records
    from zeus.simulate.sweep import parse_seeds, run_sweep, seeds_label, tasks
    from zeus.simulate.traces import GPUS, WORKLOADS

    _check_out(out)
    dataset = pick(dataset, datasets, "--dataset", "--datasets", "all")
    power_trace = pick(power_trace, gpus, "--power-trace", "--gpus", "all")
    seed_range = parse_seeds(seeds)
    todo = tasks(
        name_list(dataset, list(WORKLOADS), "dataset"), name_list(power_trace, GPUS, "GPU"),
        seed_range, policy, eta_knob, beta_knob,
    )  # fmt: skip
    console = make_console()
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"{len(todo)} simulations", total=len(todo))
        results = run_sweep(todo, processes, on_result=lambda _: progress.advance(bar))
    title = (
        f"{todo[0].policy}, mean over seeds {seeds_label(seed_range)} "
        f"(eta {eta_knob:g}, beta {beta_knob:g})"
    )
    table = Table(title=title)
    for col in ("workload", "gpu", "recurrences", "energy saved, last 10", "time change, last 10",
                "energy saved, all", "cumulative regret", "Default's regret"):  # fmt: skip
        table.add_column(col, justify="right" if col not in ("workload", "gpu") else "left")
    cells: dict[tuple[str, str], list] = {}  # type: ignore[type-arg]
    for r in results:
        cells.setdefault((r.task.dataset, r.task.gpu), []).append(r.metrics)
    for (d, g), ms in cells.items():
        n = len(ms)
        table.add_row(
            d, g, str(ms[0].num_recurrence),
            _pct(sum(m.last10_energy_saving for m in ms) / n),
            _change(sum(m.last10_time_change for m in ms) / n),
            _pct(sum(m.all_energy_saving for m in ms) / n),
            f"{sum(m.cum_regret for m in ms) / n:.2f}",
            f"{sum(m.default_cum_regret for m in ms) / n:.2f}",
        )  # fmt: skip
    console.print(table)
    if out is not None:
        from zeus.simulate.sweep import SweepRow

        write_records([SweepRow.of(r) for r in results], out)
        console.print(f"wrote {len(results)} rows to {out}")
    if plot is not None:
        from zeus.simulate.plots import plot_sweep

        console.print(f"wrote {plot_sweep(results, title, f'{plot}-sweep.png')}")


@simulate_app.command("cluster")
def cluster(
    dataset: str | None = typer.Option(
        None, "--dataset", help="Generated groups: " + DATASETS_HELP
    ),
    power_trace: str | None = typer.Option(
        None, "--power-trace", help=TRACE_HELP + " [default: v100]"
    ),
    group_trace: Path = typer.Option(
        None, "--group-trace", help="Your group trace (CSV, .gz or .xz); else generated."
    ),
    num_groups: int = typer.Option(3, "--num-groups", min=1, help="Generated groups per workload."),
    mean_jobs: float = typer.Option(40.0, "--mean-jobs", help="Generated: mean jobs per group."),
    mean_concurrency: float = typer.Option(
        0.3, "--mean-concurrency", help="Generated: mean jobs running at once."
    ),
    seed: int = typer.Option(1, help="Seed of the generator, the policy and the trace sampling."),
    policy: str = typer.Option(DEFAULT_POLICY, help=POLICY_HELP),
    eta_knob: float = typer.Option(0.5, "--eta-knob", help=ETA_HELP),
    beta_knob: float = typer.Option(2.0, "--beta-knob", help=BETA_HELP),
    save_groups: Path = typer.Option(
        None, "--save-groups", help="Also write the generated groups here."
    ),
    out: Path = typer.Option(None, help="Write every run to this .csv or .json file."),
    plot: Path = typer.Option(None, help="Write a PNG plot to PREFIX-cluster.png."),
    datasets: str | None = alias("--datasets"),
    gpu: str | None = alias("--gpu"),
) -> None:
    """Simulate Alibaba-style groups of overlapping recurring jobs."""
    from zeus.simulate.groups import generate_groups, load_group_trace, write_group_trace
    from zeus.simulate.runs import simulate_groups, write_records
    from zeus.simulate.traces import WORKLOADS

    _check_out(out)
    trace = _trace(pick(power_trace, gpu, "--power-trace", "--gpu", "v100"))
    if group_trace is not None:
        groups = load_group_trace(group_trace)
    else:
        names = name_list(
            pick(dataset, datasets, "--dataset", "--datasets", "all"), list(WORKLOADS), "dataset"
        )
        groups = generate_groups(
            names, num_groups, seed, mean_jobs=mean_jobs, mean_concurrency=mean_concurrency
        )
        if save_groups is not None:
            write_group_trace(groups, save_groups)
    results = simulate_groups(
        groups, trace, policy=policy, seed=seed, eta_knob=eta_knob, beta_knob=beta_knob
    )
    title = f"{len(groups)} groups on {trace}, policy {policy}, seed {seed}"
    table = Table(title=title)
    for col in ("group", "jobs", "runs", "concurrent", "failed", "energy saved", "time change"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for s, _ in results:
        table.add_row(
            s.group, str(s.jobs), str(s.runs), str(s.concurrent_runs), str(s.failed_runs),
            _pct(s.energy_saving), _change(s.time_change),
        )  # fmt: skip
    console = make_console()
    console.print(table)
    if out is not None:
        from zeus.simulate.runs import GroupRun

        write_records([GroupRun.of(s.group, e) for s, h in results for e in h], out)
        console.print(f"wrote {sum(len(h) for _, h in results)} runs to {out}")
    if plot is not None:
        from zeus.simulate.plots import plot_cluster

        console.print(
            f"wrote {plot_cluster([s for s, _ in results], title, f'{plot}-cluster.png')}"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(simulate_app)
