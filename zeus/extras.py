"""The package's optional extras: which imports each provides, and the one way to ask for one.

Zeus is installed from a clone (it is not published on a package index), so the hint is
``pip install -e '.[<extra>]'`` run in the clone. `pyproject.toml` lists the same extras; a test
keeps the two in step.
"""

from __future__ import annotations

import importlib.util

from zeus.errors import ZeusError

EXTRAS: dict[str, tuple[str, ...]] = {
    "server": (
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "prometheus_client",
        "psycopg",
        "pymysql",
    ),
    "agent": ("fastapi", "uvicorn"),
    "prometheus": ("prometheus_client",),
    "demo": ("torch", "sklearn"),
    "torch": ("torch",),
    "hf": ("transformers", "accelerate"),
    "lightning": ("lightning",),
    "amd": ("amdsmi",),
}
"""Extra -> top-level modules it installs (the ones Zeus imports)."""


class MissingExtraError(ZeusError):
    """A feature was used without the optional extra that provides its imports."""


def install_hint(extra: str) -> str:
    return f"pip install -e '.[{extra}]' in your Zeus clone"


def extra_for_module(module: str) -> str | None:
    """The extra that provides top-level ``module`` (the most specific one), or None."""
    top = module.partition(".")[0]
    owners = [extra for extra, modules in EXTRAS.items() if top in modules]
    return min(owners, key=lambda extra: len(EXTRAS[extra]), default=None)


def missing_extra_message(what: str, module: str, extra: str | None = None) -> str | None:
    """``<what> needs the '<extra>' extra (<module> is not installed): pip install ...``; None when
    ``module`` belongs to no extra."""
    extra = extra or extra_for_module(module)
    if extra is None:
        return None
    return f"{what} needs the '{extra}' extra ({module} is not installed): {install_hint(extra)}"


def require(extra: str, what: str) -> None:
    """Raise `MissingExtraError` naming ``extra`` unless every module it provides is importable."""
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # an import hook that refuses the module
            found = False
        if not found:
            raise MissingExtraError(missing_extra_message(what, module, extra))
