"""What every framework adapter shares: get or build the one power-limit engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zeus.errors import ZeusConfigError

if TYPE_CHECKING:
    from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer


def engine_from(
    optimizer: GlobalPowerLimitOptimizer | None, kwargs: dict[str, Any]
) -> GlobalPowerLimitOptimizer:
    """``optimizer`` itself, or a `GlobalPowerLimitOptimizer` built from ``kwargs`` — not both."""
    from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer

    if optimizer is not None:
        if kwargs:
            raise ZeusConfigError(
                "pass either a GlobalPowerLimitOptimizer or its keyword arguments, not both "
                f"(got optimizer and {', '.join(sorted(kwargs))})"
            )
        return optimizer
    return GlobalPowerLimitOptimizer(**kwargs)


def missing_framework(framework: str, extra: str) -> ImportError:
    """The error raised when an adapter's framework is not installed."""
    from zeus.extras import missing_extra_message

    return ImportError(missing_extra_message("this Zeus integration", framework, extra))
