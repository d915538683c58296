"""Learning-rate scaling when the batch size changes.

Adam-family optimizers keep the gradient-noise scale with the square root of the batch-size ratio;
plain SGD (with or without momentum) follows the linear rule. Anything else needs an explicit rule.
"""

from __future__ import annotations

import math
from typing import Literal

from zeus.errors import ZeusConfigError, check_range

Rule = Literal["sqrt", "linear", "none"]

SQRT_OPTIMIZERS = frozenset(
    {
        "adam",
        "adamw",
        "adamax",
        "nadam",
        "radam",
        "adadelta",
        "adagrad",
        "rmsprop",
        "lamb",
        "adafactor",
    }
)
LINEAR_OPTIMIZERS = frozenset({"sgd", "momentum", "nesterov", "lars"})
RULES: tuple[str, ...] = ("sqrt", "linear", "none")


def rule_for_optimizer(optimizer: str) -> Rule:
    """The scaling rule of an optimizer family; `ZeusConfigError` listing the known ones otherwise."""
    name = optimizer.strip().lower()
    if name in SQRT_OPTIMIZERS:
        return "sqrt"
    if name in LINEAR_OPTIMIZERS:
        return "linear"
    known = ", ".join(sorted(SQRT_OPTIMIZERS | LINEAR_OPTIMIZERS))
    raise ZeusConfigError(
        f"no learning-rate scaling rule known for optimizer {optimizer!r}; known: {known}; "
        f"or pass rule= one of {', '.join(RULES)}"
    )


def scale_lr(
    base_lr: float,
    base_batch_size: int,
    batch_size: int,
    *,
    optimizer: str | None = None,
    rule: Rule | None = None,
) -> float:
    """The learning rate for ``batch_size`` given ``base_lr`` tuned at ``base_batch_size``.

    Give either ``optimizer`` (its family picks the rule) or ``rule`` (``"sqrt"``, ``"linear"`` or
    ``"none"``); an explicit ``rule`` wins.
    """
    check_range("base_lr", base_lr, gt=0)
    check_range("base_batch_size", base_batch_size, ge=1)
    check_range("batch_size", batch_size, ge=1)
    if rule is None:
        if optimizer is None:
            raise ZeusConfigError("scale_lr needs optimizer= or rule= (one of sqrt, linear, none)")
        rule = rule_for_optimizer(optimizer)
    ratio = batch_size / base_batch_size
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    if rule == "linear":
        return base_lr * ratio
    if rule == "none":
        return base_lr
    raise ZeusConfigError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
