"""`zeus master`: run a recurring job with `ZeusMaster` from a YAML job file, resume it, slice corpora."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zeus.cli.console import make_console
from zeus.run.history import RecurrenceSummary, RunRecord, SeriesState
from zeus.run.master import MasterListener

JOB_COPY = "job.yaml"

master_app = typer.Typer(
    help="Drive a recurring training job on this machine (ZeusMaster).", no_args_is_help=True
)


def _fmt(value: float | None, spec: str) -> str:
    """Format ``value``; small numbers keep 3 significant digits instead of rounding to 0."""
    if value is None:
        return "–"
    return format(value, ".3g") if abs(value) < 100 else format(value, spec)


_STATUS_STYLE = {
    "reached": "[green]reached[/]",
    "failed": "[yellow]failed[/]",
    "crashed": "[red]crashed[/]",
    "interrupted": "[magenta]interrupted[/]",
}


class SeriesView(MasterListener):
    """A live table of runs with a progress bar over recurrences (used by `master` and `demo`)."""

    def __init__(self, num_recurrence: int, title: str, done: int = 0) -> None:
        self.title = title
        self.rows: list[RunRecord] = []
        self.running: str | None = None
        self.progress = Progress(
            TextColumn("[bold]recurrences"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self.task = self.progress.add_task("recurrences", total=num_recurrence, completed=done)
        self.live: Live | None = None

    def add_history(self, state: SeriesState) -> None:
        self.rows.extend(state.runs)

    def on_run_start(self, recurrence: int, try_number: int, batch_size: int, job_id: str) -> None:
        self.running = f"recurrence {recurrence} try {try_number}: batch size {batch_size} running…"
        self.refresh()

    def on_run_end(self, record: RunRecord) -> None:
        self.rows.append(record)
        self.running = None
        self.refresh()

    def on_recurrence_end(self, summary: RecurrenceSummary) -> None:
        self.progress.advance(self.task)
        self.refresh()

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def table(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for name in ("rec", "try", "batch size", "lr", "power limit (W)", "epochs"):
            table.add_column(name, justify="right")
        for name in ("energy (J)", "time (s)", "cost", "result"):
            table.add_column(name, justify="right")
        for r in self.rows:
            table.add_row(
                str(r.recurrence),
                str(r.try_number),
                str(r.batch_size),
                _fmt(r.learning_rate, ".3g"),
                "–" if r.power_limit_w is None else str(r.power_limit_w),
                "–" if r.epochs is None else str(r.epochs),
                _fmt(r.energy_j, ",.0f"),
                _fmt(r.time_s, ".1f"),
                _fmt(r.cost, ",.0f"),
                _STATUS_STYLE.get(r.status, r.status),
            )
        return table

    def render(self) -> RenderableType:
        parts: list[RenderableType] = [self.table()]
        if self.running:
            parts.append(f"[dim]{self.running}[/]")
        parts.append(self.progress)
        return Group(*parts)


def run_series(
    job_file_data: dict[str, Any], run_dir: Path, num_recurrence: int | None, show_output: bool
) -> SeriesState:
    """Validate the job, build the master and run with a live table; Ctrl-C exits with 130."""
    from zeus.run.jobfile import parse_job_file, parse_profile_params
    from zeus.run.master import ZeusMaster

    spec = parse_job_file(job_file_data, str(run_dir / JOB_COPY))
    job = spec.to_job(Path("."))
    total = num_recurrence or spec.num_recurrence
    console = make_console()
    master = ZeusMaster(
        spec.make_policy(),
        run_dir,
        eta_knob=spec.eta_knob,
        beta_knob=spec.beta_knob,
        max_tries=spec.max_tries,
        profile_params=parse_profile_params(spec.profile_params) if spec.profile_params else None,
        use_optimal_pl=spec.use_optimal_pl,
        seed=spec.seed,
        env=spec.env,
    )
    from zeus.run.history import load_series

    saved = load_series(run_dir)
    from zeus.device import gpu_backend

    backend = gpu_backend(spec.env.get("ZEUS_GPU"))
    if backend.startswith("replay:"):
        console.print(
            f"[yellow]GPU: replay GPU {backend[7:]} (ZEUS_GPU): energy and time are simulated "
            "from its profile, training is real.[/]"
        )
    view = SeriesView(total, f"{job.name} — {spec.policy} policy, run directory {run_dir}")
    if saved is not None:
        view.add_history(saved)
        view.progress.update(view.task, completed=saved.completed_recurrences)
    master.listener = view
    if show_output:
        master.echo = lambda line: console.print(f"[dim]│ {line}[/]", highlight=False, markup=False)
    with Live(view.render(), console=console, refresh_per_second=4, transient=True) as live:
        view.live = live
        try:
            state = master.run(job, spec.batch_sizes, total)
        except KeyboardInterrupt:
            view.live = None
            live.stop()
            console.print(view.table())
            console.print(
                f"[bold magenta]Interrupted.[/] History saved; continue with "
                f"[bold]zeus master resume {run_dir}[/]"
            )
            raise typer.Exit(130) from None
    console.print(view.table())
    _print_summary(console, state)
    return state


def _print_summary(console: Console, state: SeriesState) -> None:
    recurrences = state.recurrences()
    energy = sum(r.energy_j for r in recurrences)
    time_s = sum(r.time_s for r in recurrences)
    console.print(
        f"{len(recurrences)} recurrences, {len(state.runs)} runs: "
        f"{energy:,.0f} J, {time_s:,.1f} s in total; minimum cost {_fmt(state.min_cost, ',.0f')}."
    )


def _job_copy(job_path: Path, run_dir: Path) -> dict[str, Any]:
    """The job file's fields with ``workdir`` made absolute, as saved in the run directory."""
    from zeus.run.jobfile import load_job_file

    spec = load_job_file(job_path)
    data = spec.model_dump()
    data["workdir"] = str((job_path.parent / spec.workdir).resolve())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / JOB_COPY).write_text(yaml.safe_dump(data, sort_keys=False))
    return data


@master_app.command("run")
def run_cmd(
    job: Path = typer.Option(..., "--job", help="YAML job file (see docs/recurring-jobs.md)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run directory (default: zeus-runs/<dataset>+<network>+<optimizer>)."
    ),
    recurrences: int | None = typer.Option(
        None, "--recurrences", min=1, help="Override num_recurrence."
    ),
    show_output: bool = typer.Option(
        False, "--show-output", help="Also show the job's output here."
    ),
) -> None:
    """Run the recurring job (resumes if the run directory already holds this series)."""
    from zeus.errors import ZeusConfigError
    from zeus.run.jobfile import load_job_file
    from zeus.run.launch import check_template

    spec = load_job_file(job)
    check_template(spec.command_args())  # before anything is written or launched
    spec.to_job(job.parent)  # the same for default_batch_size not in batch_sizes, workdir, ...
    run_dir = (
        out or Path("zeus-runs") / f"{spec.dataset}+{spec.network}+{spec.optimizer}"
    ).resolve()
    copy = run_dir / JOB_COPY
    previous = copy.read_text() if copy.exists() else None
    data = _job_copy(job, run_dir)
    try:
        run_series(data, run_dir, recurrences, show_output)
    except ZeusConfigError:
        if previous is not None:  # refused, e.g. another series lives there: `resume` still works
            copy.write_text(previous)
        raise


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

    copy = run_dir / JOB_COPY
    if not copy.exists():
        raise ZeusConfigError(f"{run_dir} is not a zeus master run directory (no {JOB_COPY})")
    run_series(yaml.safe_load(copy.read_text()), run_dir.resolve(), recurrences, show_output)


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
