"""The one `zeus` command. Each subcommand group lives in its own module with a ``register(app)``.

The CLI owns the terminal (rich tables, progress bars); the library only logs. Heavy imports (torch,
FastAPI, matplotlib) happen inside the commands, so ``zeus --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

app = typer.Typer(
    name="zeus",
    help="Cut the energy of recurring GPU training jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Module names under zeus.cli, in the order their commands appear in --help.
_GROUPS = [
    "demo",
    "env",
    "monitor",
    "analyze",
    "simulate",
    "serve",
    "bso",
    "agent",
    "master",
    "profile",
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"zeus {version('zeus-energy')}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log INFO messages too."),
    debug: bool = typer.Option(False, "--debug", help="Log DEBUG messages too."),
    _: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print Zeus's version and exit."
    ),
) -> None:
    # Warnings only by default: a command's own output comes first, not library chatter.
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _name in _GROUPS:
    importlib.import_module(f"zeus.cli.{_name}").register(app)


def main() -> None:
    """Entry point: turns Zeus's deliberate errors, and a missing optional extra, into one clear
    line and exit code 2."""
    from zeus.errors import ZeusError

    try:
        app()
    except ZeusError as e:
        _fail(str(e))
    except ModuleNotFoundError as e:
        from zeus.extras import missing_extra_message

        command = " ".join(["zeus", *[a for a in sys.argv[1:2] if not a.startswith("-")]])
        message = missing_extra_message(command, e.name or "")
        if message is None:
            raise
        _fail(message)


def _fail(message: str) -> None:
    from rich.markup import escape

    from zeus.cli.console import make_console

    console = make_console(stderr=True)
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(2) from None
