"""What a job's GPUs allow the power-limit optimizer: one model, boards of their own, permission to
change limits; and their temperature and throttle reasons while a limit is profiled.

One limit fits one GPU model, so GPUs of different models in one job are refused. GPUs whose figures
are a shared board's (MIG instances, AMD compute partitions) are neither measured nor limited: the
board's energy includes other tenants' work and its limit would throttle them too.

A limit's measured time and energy are only the limit's doing if nothing else held the clocks back.
`ThrottleWatch` reads each GPU's `zeus.device.base.Thermals` at every profiled step (GPUs without the
``thermals`` capability, such as replay GPUs, are skipped), keeps the hottest temperature and every
throttle reason seen, and travels between the ranks of a data-parallel job as a row of floats. A
reason the power limit does not explain (thermal, hardware slowdown, power brake, clocks someone set)
makes the optimizer warn, naming the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import get_args

from zeus.device.base import GPU, NOT_POWER_LIMIT, ThrottleReason
from zeus.errors import ZeusConfigError, ZeusDeviceError

logger = logging.getLogger(__name__)

REASONS: tuple[ThrottleReason, ...] = get_args(ThrottleReason)
_NONE = -1.0


def check_one_model(gpus: Sequence[GPU]) -> None:
    """``ZeusConfigError`` when ``gpus`` are of different models."""
    models = sorted({g.name for g in gpus})
    if len(models) > 1:
        raise ZeusConfigError(
            f"monitor.gpus: GPUs of different models ({', '.join(models)}) cannot share one "
            "power limit; optimize each model's GPUs in its own job"
        )


def probe_permission(gpus: Sequence[GPU]) -> tuple[bool, str]:
    """Whether this process may change every GPU's limit, and why not: the capability, then
    setting each GPU to its current limit (a no-op the driver still checks)."""
    for gpu in gpus:
        if not gpu.capabilities.set_power_limit:
            reason = gpu.set_power_limit_denied_reason or "not permitted"
            return False, f"GPU {gpu.index} ({gpu.name}): {reason}"
        try:
            gpu.set_power_limit_w(gpu.get_power_limit_w())
        except ZeusDeviceError as error:  # no permission, or not supported on this GPU
            return False, str(error)
    return True, ""


def warn_shared_board(shared: Sequence[GPU]) -> None:
    """Say why the optimizer leaves a job on shared boards alone (``shared``: this rank's)."""
    where = ", ".join(f"GPU {g.index} (board {g.board_id})" for g in shared) or "another rank"
    logger.warning(
        "%s: MIG instance(s) or compute partition(s) sharing a board with other tenants: their "
        "power and energy are the whole board's and a limit would throttle every tenant, so "
        "GlobalPowerLimitOptimizer neither profiles nor changes power limits; training runs at "
        "the current limit",
        where,
    )


class ThrottleWatch:
    """Hottest temperature and throttle reasons of this process's GPUs over one measurement."""

    def __init__(self, gpus: Sequence[GPU]) -> None:
        self.gpus = [g for g in gpus if g.capabilities.thermals]
        self.reset()

    def reset(self) -> None:
        self.max_temperature_c: float | None = None
        self.reasons: set[ThrottleReason] | None = None

    def sample(self) -> None:
        """Read every GPU once; a GPU whose reading fails is no longer read (one warning)."""
        for gpu in list(self.gpus):
            try:
                thermals = gpu.thermals()
            except ZeusDeviceError as error:
                self.gpus.remove(gpu)
                logger.warning("GPU %d: not recording temperature any more: %s", gpu.index, error)
                continue
            if thermals.temperature_c is not None:
                self.max_temperature_c = max(
                    self.max_temperature_c or _NONE, thermals.temperature_c
                )
            if thermals.throttle_reasons is not None:
                self.reasons = (self.reasons or set()) | thermals.throttle_reasons

    def row(self) -> list[float]:
        """This process's findings as floats, for the ranks to gather."""
        mask = sum(1 << k for k, r in enumerate(REASONS) if self.reasons and r in self.reasons)
        temperature = _NONE if self.max_temperature_c is None else self.max_temperature_c
        return [temperature, float(mask), 0.0 if self.reasons is None else 1.0]

    @staticmethod
    def combine(rows: Sequence[Sequence[float]]) -> tuple[float | None, tuple[str, ...] | None]:
        """The job's hottest temperature and sorted reasons from every rank's `row`."""
        temperatures = [r[0] for r in rows if r[0] != _NONE]
        mask = 0
        for r in rows:
            mask |= int(r[1])
        known = any(r[2] for r in rows)
        reasons = tuple(sorted(r for k, r in enumerate(REASONS) if mask >> k & 1))
        return (max(temperatures) if temperatures else None), (reasons if known else None)


def warn_if_distorted(
    limit_w: int, max_temperature_c: float | None, reasons: tuple[str, ...] | None
) -> None:
    """Warn when throttling the power limit does not explain occurred while ``limit_w`` was
    measured."""
    distorting = sorted(set(reasons or ()) & NOT_POWER_LIMIT)
    if not distorting:
        return
    hottest = "" if max_temperature_c is None else f", up to {max_temperature_c:.0f} °C"
    logger.warning(
        "power limit %d W: the GPUs throttled for %s (not the power limit) while it was "
        "profiled%s; its time and energy reflect that too. Check cooling and clock settings, then "
        "profile again (delete the saved profile to re-measure)",
        limit_w,
        " and ".join(distorting),
        hottest,
    )
