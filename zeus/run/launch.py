"""Launching one run of a recurring job: fill the command template, set ``ZEUS_*``, stream the log.

A run is a child process. Its output goes line by line to a log file (and to an optional ``echo``
callable, e.g. the terminal). Ctrl-C or SIGTERM in the driver terminates the child with SIGTERM (its
own handlers restore power limits), waits for it, and re-raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import signal
import string
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from zeus.errors import ZeusConfigError
from zeus.run.env import ZeusRunEnv

# ZeusRunEnv is defined with the variables it writes (zeus.run.env); drivers import it from here too.
__all__ = [
    "PLACEHOLDERS",
    "LaunchOutcome",
    "ZeusRunEnv",
    "check_executable",
    "check_template",
    "fill_template",
    "format_lr",
    "launch",
    "log_tail",
]

logger = logging.getLogger(__name__)

PLACEHOLDERS = ("bs", "lr", "seed", "epochs", "slice_number", "target_metric")
"""The names a command template may use, as ``{bs}`` etc."""

TERMINATE_GRACE_S = 15.0


def check_template(command: Sequence[str]) -> None:
    """Raise `ZeusConfigError` naming any placeholder of ``command`` that is not in `PLACEHOLDERS`."""
    if not command:
        raise ZeusConfigError("command must be a non-empty list of arguments")
    for arg in command:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(arg) if f is not None]
        except ValueError as e:
            raise ZeusConfigError(f"command argument {arg!r} is not a valid template: {e}") from e
        for name in fields:
            if name not in PLACEHOLDERS:
                allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                raise ZeusConfigError(
                    f"command placeholder {{{name}}} in {arg!r} is unknown; allowed: {allowed} "
                    "(write {{ and }} for literal braces)"
                )


def check_executable(command: Sequence[str], workdir: Path, env: Mapping[str, str]) -> None:
    """Raise `ZeusConfigError` unless ``command[0]`` can be started from ``workdir`` with ``env``'s
    PATH (a template in the program name is not checked)."""
    program = command[0]
    if "{" in program:
        return
    if os.sep in program:
        path = workdir / program
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ZeusConfigError(
                f"command: {program!r} is not an executable file (looked in {workdir})"
            )
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise ZeusConfigError(f"command: {program!r} is not found on PATH; is it installed?")


def log_tail(log_path: str | Path, lines: int = 10) -> list[str]:
    """The last ``lines`` lines of a run's log (empty when it has none)."""
    try:
        with open(log_path, errors="replace") as log:
            return [line.rstrip("\n") for line in collections.deque(log, maxlen=lines)]
    except OSError:
        return []


def fill_template(command: Sequence[str], values: Mapping[str, object]) -> list[str]:
    """The command with every placeholder replaced; ``values`` must hold all of `PLACEHOLDERS`."""
    check_template(command)
    return [arg.format_map(values) for arg in command]


def format_lr(lr: float | None) -> str:
    """A learning rate as a short, exact-enough string ("" when the job has none)."""
    return "" if lr is None else f"{lr:.6g}"


@dataclass(frozen=True)
class LaunchOutcome:
    exit_code: int
    wall_s: float


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise ``KeyboardInterrupt`` while a run is in flight (main thread only),
    whatever handlers other libraries left installed in the driver."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _pump(stream: Iterator[str], log_path: Path, echo: Callable[[str], None] | None) -> None:
    with log_path.open("a") as log:
        for line in stream:
            log.write(line)
            log.flush()
            if echo is not None:
                echo(line.rstrip("\n"))


def _stop(proc: subprocess.Popen[str]) -> None:
    """Terminate the child gracefully (SIGTERM: it restores power limits), kill it if it hangs."""
    if proc.poll() is not None:
        return
    logger.warning("Stopping run (pid %d) with SIGTERM", proc.pid)
    proc.terminate()
    try:
        proc.wait(TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        logger.error(
            "Run (pid %d) ignored SIGTERM for %.0f s; killing it", proc.pid, TERMINATE_GRACE_S
        )
        proc.kill()
        proc.wait()


def launch(
    command: list[str],
    *,
    workdir: Path,
    env: Mapping[str, str],
    log_path: Path,
    echo: Callable[[str], None] | None = None,
) -> LaunchOutcome:
    """Run ``command`` to completion with ``env`` added to the driver's environment.

    The run inherits the driver's whole environment, so ``ZEUS_GPU`` and ``ZEUS_STATE_DIR`` reach it.

    Raises ``KeyboardInterrupt`` after stopping the child when the driver is interrupted.
    A command that cannot be started (missing executable) returns exit code 127 with the reason logged.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **env}
    start = time.monotonic()
    with log_path.open("w") as log:
        log.write(f"# zeus: {' '.join(command)}\n# zeus: cwd {workdir}\n")
    try:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
    except OSError as e:
        with log_path.open("a") as log:
            log.write(f"# zeus: could not start the command: {e}\n")
        logger.error("Could not start %s: %s", command[0], e)
        return LaunchOutcome(127, time.monotonic() - start)
    with proc:
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, log_path, echo), daemon=True)
        pump.start()
        try:
            with _signals_as_interrupt():
                exit_code = proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            raise
        finally:
            pump.join(5.0)
    return LaunchOutcome(exit_code, time.monotonic() - start)
