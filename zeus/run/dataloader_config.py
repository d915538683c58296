"""Parameters of a `ZeusDataLoader` training run: constructor arguments, else ``ZEUS_*`` variables.

A constructor argument wins; an argument left as ``None`` is read from the environment variable
that `ZeusMaster` sets for the jobs it launches (`zeus.run.env.RUN_VARIABLES`: ``ZEUS_TARGET_METRIC``,
``ZEUS_COST_THRESH``, ``ZEUS_ETA_KNOB``, ``ZEUS_LOG_DIR``, ``ZEUS_JOB_ID``, ``ZEUS_PROFILE_PARAMS``,
``ZEUS_USE_OPTIMAL_PL``); otherwise a default applies. When both are set and differ, a warning
says which won. Every value is checked; errors name the argument or variable and the allowed range.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeus.cost import check_eta
from zeus.errors import ZeusConfigError, check_range
from zeus.run.env import RUN_VARIABLES, RunVariable, check_profile_params

logger = logging.getLogger(__name__)

DEFAULT_ETA_KNOB = 0.5
DEFAULT_PROFILE_PARAMS = (10, 40)
DEFAULT_JOB_ID = "zeus"
PROFILE_JOB = "zeus-dataloader"
"""Job name in the key of the power-limit profiles the train loader saves in ``log_dir``."""
TRAIN_ONLY_ARGS = tuple(var.key for var in RUN_VARIABLES)
"""The constructor arguments that a ``ZEUS_*`` variable may supply (train loader only)."""


@dataclass(frozen=True)
class RunConfig:
    """The resolved parameters of one training run."""

    max_epochs: int
    target_metric: float | None = None
    cost_thresh: float = math.inf
    eta_knob: float = DEFAULT_ETA_KNOB
    log_dir: Path | None = None
    job_id: str = DEFAULT_JOB_ID
    warmup_steps: int = DEFAULT_PROFILE_PARAMS[0]
    profile_steps: int = DEFAULT_PROFILE_PARAMS[1]
    use_optimal_pl: bool = True

    @property
    def result_path(self) -> Path | None:
        """``<log_dir>/<job_id>.result.json``, where `ZeusMaster` reads the run's result."""
        return None if self.log_dir is None else self.log_dir / f"{self.job_id}.result.json"


def _check_job_id(name: str, job_id: str) -> None:
    if not job_id or "/" in job_id or "\\" in job_id or job_id in (".", ".."):
        raise ZeusConfigError(
            f"{name} must be a non-empty file name prefix without '/', got {job_id!r}"
        )


def _pick(var: RunVariable, arg: Any, environ: Mapping[str, str]) -> tuple[Any, str] | None:
    """(value, where it came from) for one parameter: the argument, else its variable, else None."""
    raw = environ.get(var.name, "")
    if arg is not None:
        if raw:
            try:
                overridden = var.parse(raw, var.name) != arg
            except ZeusConfigError:
                overridden = True
            if overridden:
                logger.warning("%s=%r overrides %s=%r", var.key, arg, var.name, raw)
        return arg, var.key
    if raw:
        return var.parse(raw, var.name), var.name
    return None


def resolve_config(
    max_epochs: int, args: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> RunConfig:
    """Merge constructor ``args`` (None = unset) with ``ZEUS_*`` variables; arguments win.

    Every value is range-checked; errors name the argument or the variable it came from.
    """
    environ = os.environ if environ is None else environ
    check_range("max_epochs", max_epochs, ge=1)
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for var in RUN_VARIABLES:
        picked = _pick(var, args.get(var.key), environ)
        if picked is not None:
            values[var.key], source[var.key] = picked
    if "cost_thresh" in values:
        check_range(source["cost_thresh"], values["cost_thresh"], gt=0)
    if "eta_knob" in values:
        check_eta(values["eta_knob"], source["eta_knob"])
    if "target_metric" in values and not math.isfinite(values["target_metric"]):
        raise ZeusConfigError(f"{source['target_metric']} must be a finite number")
    if "job_id" in values:
        _check_job_id(source["job_id"], values["job_id"])
    if "log_dir" in values:
        values["log_dir"] = Path(values["log_dir"])
    if "profile_params" in values:
        params = check_profile_params(tuple(values.pop("profile_params")), source["profile_params"])
        values["warmup_steps"], values["profile_steps"] = params
    return RunConfig(max_epochs=int(max_epochs), **values)
