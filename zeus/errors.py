"""The few errors Zeus raises on purpose.

Every message names what was wrong and what is allowed, so a user can act on it without a traceback.
"""

from __future__ import annotations


class ZeusError(Exception):
    """Base of every error Zeus raises deliberately."""


class ZeusConfigError(ZeusError, ValueError):
    """Bad input: a field outside its allowed range, an unknown name, a malformed file."""


class ZeusDeviceError(ZeusError):
    """A device backend failed."""


class GPUNotFoundError(ZeusDeviceError, LookupError):
    """A GPU index, UUID or MIG id that does not exist for this process."""


class NotSupportedError(ZeusDeviceError):
    """The device cannot do this (e.g. no energy counter before Volta)."""


class ZeusPermissionError(ZeusDeviceError, PermissionError):
    """Not allowed to change a device setting (typically power limits without root/CAP_SYS_ADMIN)."""


class ZeusServerError(ZeusError):
    """The batch size optimizer server refused a request or could not be reached."""


def check_range(
    field: str,
    value: float,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> None:
    """Raise `ZeusConfigError` naming `field` and its allowed range when `value` is outside it."""
    ok = value == value  # NaN is never in range
    if ge is not None:
        ok = ok and value >= ge
    if gt is not None:
        ok = ok and value > gt
    if le is not None:
        ok = ok and value <= le
    if lt is not None:
        ok = ok and value < lt
    if not ok:
        bounds = []
        if ge is not None:
            bounds.append(f">= {ge:g}")
        if gt is not None:
            bounds.append(f"> {gt:g}")
        if le is not None:
            bounds.append(f"<= {le:g}")
        if lt is not None:
            bounds.append(f"< {lt:g}")
        raise ZeusConfigError(f"{field} must be {' and '.join(bounds)}, got {value!r}")
