"""What every subcommand's options share: old names kept as hidden aliases, lists, case.

The rules (docs/cli.md): one name per concept across commands; an option that sets a job-file field
is that field in kebab case; a renamed option keeps its old name as a hidden alias; names of bundled
things (workloads, GPUs, policies) are case-insensitive; an option that can take several values takes
a comma-separated list, singular name (``--dataset cifar100,squad``, ``--gpu-index 0,1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import typer

from zeus.errors import ZeusConfigError

T = TypeVar("T")


def alias(old: str) -> Any:
    """A hidden option under an old name, read with `pick`."""
    return typer.Option(None, old, hidden=True)


def pick(value: T | None, old_value: T | None, name: str, old: str, default: T) -> T:
    """The value given under ``name`` or its old name ``old`` (not both), else ``default``."""
    if value is not None and old_value is not None:
        raise ZeusConfigError(f"{old} is the old name of {name}: give one of them")
    if value is not None:
        return value
    return default if old_value is None else old_value


def name_list(value: str, valid: Sequence[str], what: str, allow_all: bool = True) -> list[str]:
    """``"a,B"`` -> ``["a", "b"]``, checked against ``valid`` (case-insensitive); ``all`` = all."""
    items = [v.strip().lower() for v in value.split(",") if v.strip()]
    if allow_all and items == ["all"]:
        return list(valid)
    bad = [v for v in items if v not in valid]
    if bad or not items:
        raise ZeusConfigError(
            f"unknown {what} {', '.join(bad) or '(none)'}; valid: {', '.join(valid)}"
            + (", or all" if allow_all else "")
        )
    return items


def int_list(values: Sequence[str], name: str) -> list[int]:
    """``["0,1", "3"]`` (comma lists, the option repeated, or both) -> ``[0, 1, 3]``."""
    try:
        return [int(v) for text in values for v in text.split(",") if v.strip()]
    except ValueError:
        raise ZeusConfigError(
            f"{name} takes whole numbers, e.g. 0,1; got {','.join(values)!r}"
        ) from None
