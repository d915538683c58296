"""`zeus master`: run a recurring job with `ZeusMaster` from a YAML job file, resume it, slice corpora."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
import yaml
from rich.console import Console

from zeus.cli.console import make_console
from zeus.cli.series_view import SeriesView, fmt

if TYPE_CHECKING:
    from zeus.job import Job
    from zeus.run.history import SeriesState
    from zeus.run.jobfile import JobFile
    from zeus.run.master import ZeusMaster

JOB_COPY = "job.yaml"

master_app = typer.Typer(
    help="Drive a recurring training job on this machine (ZeusMaster).", no_args_is_help=True
)


def _prepare(spec: JobFile, run_dir: Path) -> tuple[ZeusMaster, Job]:
    """The master and job of ``spec`` (``workdir`` already absolute), checked against ``run_dir``
    before anything is written: a series of another job there is refused, the folder untouched."""
    from zeus.errors import ZeusConfigError
    from zeus.run.master import SeriesMismatchError, ZeusMaster

    job = spec.to_job(Path("."))
    master = ZeusMaster(
        spec.make_policy(),
        run_dir,
        eta_knob=spec.eta_knob,
        beta_knob=spec.beta_knob,
        max_tries=spec.max_tries,
        profile_params=spec.profile_steps(),
        use_optimal_pl=spec.use_optimal_pl,
        seed=spec.seed,
        env=spec.env,
    )
    try:
        master.check(job, spec.batch_sizes)
    except SeriesMismatchError as e:
        raise ZeusConfigError(
            f"{run_dir} holds the series of another job or setting: {'; '.join(e.differences)}. "
            f"Either resume that series as it is (zeus master resume {run_dir}) or run this job "
            "in another folder (--out DIR)."
        ) from None
    return master, job


def run_series(spec: JobFile, run_dir: Path, num_recurrence: int, show_output: bool) -> SeriesState:
    """Run (or resume) the series with a live table or streamed rows; Ctrl-C exits with 130.

    Everything is checked before ``run_dir`` is touched; then the job file's copy that `resume`
    reads is written there (absolute workdir, this run's total).
    """
    from zeus.device import gpu_backend
    from zeus.run.history import load_series

    master, job = _prepare(spec, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    copy = spec.model_copy(update={"num_recurrence": num_recurrence})
    (run_dir / JOB_COPY).write_text(yaml.safe_dump(copy.model_dump(), sort_keys=False))
    console = make_console()
    backend = gpu_backend(spec.env.get("ZEUS_GPU"))
    if backend.startswith("replay:"):
        console.print(
            f"[yellow]GPU: replay GPU {backend[7:]} (ZEUS_GPU): energy and time are simulated "
            "from its profile, training is real.[/]"
        )
    view = SeriesView(console, num_recurrence, f"{job.name} — {spec.policy} policy, {run_dir}")
    saved = load_series(run_dir)
    if saved is not None:
        view.add_history(saved)
    master.listener = view
    if show_output:
        master.echo = lambda line: console.print(f"[dim]│ {line}[/]", highlight=False, markup=False)
    hint = f"History saved; continue with [bold]zeus master resume {run_dir}[/]"
    state = view.show(lambda: master.run(job, spec.batch_sizes, num_recurrence), hint)
    _print_summary(console, state)
    return state


def _print_summary(console: Console, state: SeriesState) -> None:
    recurrences = state.recurrences()
    energy = sum(r.energy_j for r in recurrences)
    time_s = sum(r.time_s for r in recurrences)
    console.print(
        f"{len(recurrences)} recurrences, {len(state.runs)} runs: "
        f"{energy:,.0f} J, {time_s:,.1f} s in total; minimum cost {fmt(state.min_cost, ',.0f')}."
    )


@master_app.command("run")
def run_cmd(
    job: Path = typer.Option(..., "--job", help="YAML job file (see docs/recurring-jobs.md)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run directory (default: zeus-runs/<dataset>+<network>+<optimizer>)."
    ),
    recurrences: int | None = typer.Option(
        None, "--recurrences", min=1, help="Recurrences to run (overrides num_recurrence)."
    ),
    show_output: bool = typer.Option(
        False, "--show-output", help="Also show the job's output here."
    ),
) -> None:
    """Run the recurring job (resumes if the run directory already holds this series)."""
    from zeus.errors import ZeusConfigError
    from zeus.run.jobfile import load_job_file

    spec = load_job_file(job)
    total = recurrences or spec.num_recurrence
    if total is None:
        raise ZeusConfigError(
            f"{job}: num_recurrence is missing; add it to the file or pass --recurrences N"
        )
    run_dir = (
        out or Path("zeus-runs") / f"{spec.dataset}+{spec.network}+{spec.optimizer}"
    ).resolve()
    # The copy `resume` reads: absolute workdir, this run's total; written once the checks pass.
    workdir = str((job.parent / spec.workdir).resolve())
    run_series(spec.model_copy(update={"workdir": workdir}), run_dir, total, show_output)


@master_app.command("resume")
def resume_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory of an interrupted series."),
    recurrences: int | None = typer.Option(
        None, "--recurrences", min=1, help="Run up to this many recurrences in total."
    ),
    show_output: bool = typer.Option(False, "--show-output", help="Also show the job's output."),
) -> None:
    """Continue a series exactly where it stopped."""
    from zeus.errors import ZeusConfigError
    from zeus.run.jobfile import load_job_file

    copy = run_dir / JOB_COPY
    if not copy.exists():
        raise ZeusConfigError(f"{run_dir} is not a zeus master run directory (no {JOB_COPY})")
    spec = load_job_file(copy)
    total = recurrences or spec.num_recurrence
    if total is None:
        raise ZeusConfigError(f"{copy} has no num_recurrence: pass --recurrences N")
    run_series(spec, run_dir.resolve(), total, show_output)


@master_app.command("slice-corpus")
def slice_corpus_cmd(
    csv_path: Path = typer.Argument(..., help="Sentiment140-style CSV (no header)."),
    out: Path = typer.Option(..., "--out", help="Folder for slice_0001.csv, slice_0002.csv, …"),
    slice_size: int = typer.Option(500_000, "--slice-size", min=1, help="Rows per slice."),
    stride: int = typer.Option(50_000, "--stride", min=1, help="Rows between slice starts."),
    encoding: str = typer.Option("latin-1", "--encoding", help="Encoding of the CSV."),
) -> None:
    """Cut a tweet corpus into date-sorted overlapping slices (drifting data, one per recurrence)."""
    from zeus.simulate.drift import slice_corpus

    slices = slice_corpus(csv_path, out, slice_size=slice_size, stride=stride, encoding=encoding)
    console = make_console()
    for s in slices:
        console.print(
            f"{s.path.name}: rows {s.first_row}–{s.last_row}, {s.first_date} … {s.last_date}"
        )
    console.print(f"{len(slices)} slices in {out}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(master_app, name="master")
