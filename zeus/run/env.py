"""The ``ZEUS_*`` variables between a driver and each run it launches: one definition, both sides.

A driver (`ZeusMaster`, `zeus profile`) writes them with `ZeusRunEnv.as_env`; inside the run,
`ZeusDataLoader` reads them back (`zeus.run.dataloader_config`). Both go through `RUN_VARIABLES`, so
a variable cannot be written in one format and parsed in another. ``"warmup,measure"`` has its one parser here
too (`parse_profile_params`), for the variable, job files and ``zeus profile --steps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeus.errors import ZeusConfigError, check_range


def parse_profile_params(text: str, field: str = "profile_params") -> tuple[int, int]:
    """``"warmup,measure"`` -> ``(warmup, measure)``: two integers, warmup >= 0, measure >= 1."""
    try:
        warmup, measure = (int(part) for part in text.split(","))
    except ValueError:
        raise ZeusConfigError(
            f"{field} must be 'warmup,measure' (two integers, e.g. '10,40'), got {text!r}"
        ) from None
    return check_profile_params((warmup, measure), field)


def check_profile_params(params: tuple[int, int], field: str = "profile_params") -> tuple[int, int]:
    """``(warmup, measure)`` with warmup >= 0 and measure >= 1, as ints."""
    if len(params) != 2:
        raise ZeusConfigError(f"{field} must be (warmup, measure), got {params!r}")
    check_range(f"{field} warmup steps", params[0], ge=0)
    check_range(f"{field} measure steps", params[1], ge=1)
    return int(params[0]), int(params[1])


def _number(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ZeusConfigError(f"{name} must be a number, got {raw!r}") from None


def _boolean(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ZeusConfigError(f"{name} must be one of true/false/1/0/yes/no, got {raw!r}")


def _threshold(value: float | None) -> str:
    return "inf" if value is None or not math.isfinite(value) else repr(value)


@dataclass(frozen=True)
class RunVariable:
    """One ``ZEUS_*`` variable: the `ZeusRunEnv` field (= `ZeusDataLoader` argument) it carries."""

    key: str
    name: str
    parse: Callable[[str, str], Any]
    """``(raw, name) -> value``; raises `ZeusConfigError` naming the variable."""
    format: Callable[[Any], str]


RUN_VARIABLES: tuple[RunVariable, ...] = (
    RunVariable("target_metric", "ZEUS_TARGET_METRIC", _number, repr),
    RunVariable("log_dir", "ZEUS_LOG_DIR", lambda raw, _: Path(raw), str),
    RunVariable("job_id", "ZEUS_JOB_ID", lambda raw, _: raw, str),
    RunVariable("cost_thresh", "ZEUS_COST_THRESH", _number, _threshold),
    RunVariable("eta_knob", "ZEUS_ETA_KNOB", _number, repr),
    RunVariable(
        "profile_params", "ZEUS_PROFILE_PARAMS", parse_profile_params, lambda p: f"{p[0]},{p[1]}"
    ),
    RunVariable("use_optimal_pl", "ZEUS_USE_OPTIMAL_PL", _boolean, lambda b: str(b).lower()),
)


@dataclass(frozen=True)
class ZeusRunEnv:
    """The ``ZEUS_*`` variables of one run, as a driver sets them.

    ``cost_thresh`` None (or inf) is written as ``inf``: no bound. ``profile_params`` None is not
    written: the run then uses its own default.
    """

    target_metric: float
    log_dir: Path
    job_id: str
    cost_thresh: float | None
    eta_knob: float
    profile_params: tuple[int, int] | None
    use_optimal_pl: bool

    def as_env(self) -> dict[str, str]:
        env = {}
        for var in RUN_VARIABLES:
            value = getattr(self, var.key)
            if value is not None or var.key == "cost_thresh":
                env[var.name] = var.format(value)
        return env
