"""How `zeus master` and `zeus demo` show a series as it runs.

On a terminal: a live table with a progress bar, redrawn as runs end. Elsewhere (a pipe, a file, CI):
one line per run as soon as it ends, under a header, so a log shows progress while the series runs.
Either way a crashed run shows the last lines of its log, and a "–" power limit is explained.
"""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zeus.run.history import RecurrenceSummary, RunRecord, SeriesState
from zeus.run.launch import log_tail
from zeus.run.master import MasterListener

COLUMNS = (
    ("rec", 3),
    ("try", 3),
    ("batch size", 10),
    ("lr", 8),
    ("power limit (W)", 15),
    ("epochs", 6),
    ("energy (J)", 10),
    ("time (s)", 8),
    ("cost", 8),
    ("result", 11),
)
NO_LIMIT_NOTE = (
    "power limit –: none was chosen: the run ended before every power limit was profiled "
    "(warmup + measured steps per limit, profile_params; lower them when epochs are short), "
    "or it ran without a GPU"
)
LOG_TAIL_LINES = 8

_STATUS_STYLE = {
    "reached": "[green]reached[/]",
    "failed": "[yellow]failed[/]",
    "crashed": "[red]crashed[/]",
    "interrupted": "[magenta]interrupted[/]",
}


def fmt(value: float | None, spec: str) -> str:
    """Format ``value``; small numbers keep 3 significant digits instead of rounding to 0."""
    if value is None:
        return "–"
    return format(value, ".3g") if abs(value) < 100 else format(value, spec)


def _cells(r: RunRecord) -> list[str]:
    return [
        str(r.recurrence),
        str(r.try_number),
        str(r.batch_size),
        fmt(r.learning_rate, ".3g"),
        "–" if r.power_limit_w is None else str(r.power_limit_w),
        "–" if r.epochs is None else str(r.epochs),
        fmt(r.energy_j, ",.0f"),
        fmt(r.time_s, ".1f"),
        fmt(r.cost, ",.0f"),
        r.status,
    ]


def _unexplained_dash(r: RunRecord) -> bool:
    return r.power_limit_w is None and r.status in ("reached", "failed")


class SeriesView(MasterListener):
    """Shows a series: live on a terminal, one line per finished run elsewhere."""

    def __init__(self, console: Console, num_recurrence: int, title: str, done: int = 0) -> None:
        self.console = console
        self.title = title
        self.stream = not console.is_terminal
        self.rows: list[RunRecord] = []
        self.running: str | None = None
        self._noted = False
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
        self.progress.update(self.task, completed=state.completed_recurrences)

    # -- MasterListener ---------------------------------------------------------------------

    def on_run_start(self, recurrence: int, try_number: int, batch_size: int, job_id: str) -> None:
        self.running = f"recurrence {recurrence} try {try_number}: batch size {batch_size} running…"
        self._refresh()

    def on_run_end(self, record: RunRecord) -> None:
        self.rows.append(record)
        self.running = None
        if self.stream:
            self._print(_line(_cells(record)))
            if _unexplained_dash(record) and not self._noted:
                self._print(f"  ({NO_LIMIT_NOTE})")
                self._noted = True
        if record.status == "crashed":
            self._show_crash(record)
        self._refresh()

    def on_recurrence_end(self, summary: RecurrenceSummary) -> None:
        self.progress.advance(self.task)
        self._refresh()

    # -- rendering --------------------------------------------------------------------------

    def show(self, run: Callable[[], SeriesState], resume_hint: str = "") -> SeriesState:
        """Call ``run`` while showing its progress; Ctrl-C prints what ran and exits with 130."""
        if self.stream:
            self._print(self.title)
            self._print(_line([name for name, _ in COLUMNS]))
            for record in self.rows:
                self._print(_line(_cells(record)))
            try:
                return run()
            except KeyboardInterrupt:
                self.console.print(f"[bold magenta]Interrupted.[/] {resume_hint}")
                raise typer.Exit(130) from None
        with Live(
            self.render(), console=self.console, refresh_per_second=4, transient=True
        ) as live:
            self.live = live
            try:
                state = run()
            except KeyboardInterrupt:
                self.live = None
                live.stop()
                self.console.print(self.table())
                self.console.print(f"[bold magenta]Interrupted.[/] {resume_hint}")
                raise typer.Exit(130) from None
        self.live = None
        self.console.print(self.table())
        return state

    def table(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for name, _ in COLUMNS:
            table.add_column(name, justify="right")
        for r in self.rows:
            cells = _cells(r)
            cells[-1] = _STATUS_STYLE.get(r.status, r.status)
            table.add_row(*cells)
        if any(_unexplained_dash(r) for r in self.rows):
            table.caption, table.caption_justify = NO_LIMIT_NOTE, "left"
        return table

    def render(self) -> RenderableType:
        parts: list[RenderableType] = [self.table()]
        if self.running:
            parts.append(f"[dim]{self.running}[/]")
        parts.append(self.progress)
        return Group(*parts)

    def _print(self, line: str) -> None:
        """A plain line, never wrapped, so that logs keep one row per line."""
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def _show_crash(self, record: RunRecord) -> None:
        lines = log_tail(record.log_path, LOG_TAIL_LINES)
        self.console.print(
            f"[red]run {record.job_id} crashed[/] ({escape(record.message)}); "
            f"last lines of {escape(record.log_path)}:",
            soft_wrap=True,
        )
        for line in lines or ["(the log is empty)"]:
            self.console.print(f"[dim]│ {escape(line)}[/]", highlight=False, soft_wrap=True)


def _line(cells: list[str]) -> str:
    parts = [cell.rjust(width) for cell, (_, width) in zip(cells[:-1], COLUMNS, strict=False)]
    return "  ".join([*parts, cells[-1]])
