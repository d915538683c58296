"""Device backends behind small protocols (`zeus.device.base`). Nothing else imports a vendor library.

`get_gpus` is the one place that picks a GPU backend, and `gpu_backend` the one place that reads
``ZEUS_GPU``. Both run only when called, never at import. A backend is one module with a function
``open_gpus(arg, indices)`` plus one line in `BACKENDS`; a hardware backend that the auto choice may
pick also names its ``hardware`` and has ``available()`` and ``status()``. The contract suite in
``tests/device/contract.py`` is what a backend must do.

* ``"nvml"``: the NVIDIA GPUs this process sees (after ``CUDA_VISIBLE_DEVICES``);
* ``"amd"``: the AMD GPUs this process sees (after ``ROCR_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES``);
* ``"replay:<profile>[:<n>][:wall]"``: one or ``n`` replay GPUs (`zeus.device.replay`), on virtual
  time unless ``:wall`` asks for real time;
* ``"agent[:<socket path>]"``: the GPUs of the node agent (`zeus.device.agent`), no privileges needed;
* ``"none"``: no GPU;
* unset (argument None and no ``ZEUS_GPU``): the first hardware backend in table order that finds a
  GPU (NVIDIA, then AMD), else none. Never silently replay. One vendor per process: a training
  process runs one framework build (CUDA or ROCm), whose device indices these are. To measure both
  vendors, pass ``get_gpus(backend="nvml") + get_gpus(backend="amd")`` to a monitor.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from zeus.device.base import CPU, GPU, CPUEnergy, GPUCapabilities
from zeus.errors import GPUNotFoundError, ZeusConfigError

__all__ = [
    "BACKENDS",
    "CPU",
    "GPU",
    "CPUEnergy",
    "GPUCapabilities",
    "auto_backend",
    "backend_or_replay",
    "get_gpus",
    "gpu_backend",
    "hardware_backends",
    "hardware_status",
    "parse_backend",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """A GPU backend: the module whose ``open_gpus(arg, indices)`` makes its GPUs, and its syntax.
    ``hardware`` (e.g. ``"NVIDIA"``): the auto choice tries it, through the module's ``available()``
    and ``status()``."""

    module: str
    usage: str
    hardware: str = ""


BACKENDS: dict[str, Backend] = {
    "nvml": Backend("zeus.device.nvml", "nvml", hardware="NVIDIA"),
    "amd": Backend("zeus.device.amd", "amd", hardware="AMD"),
    "replay": Backend("zeus.device.replay", "replay:<profile>[:<n>][:wall]"),
    "agent": Backend("zeus.device.agent", "agent[:<socket path>]"),
    "none": Backend("zeus.device", "none"),
}


def backend_help() -> str:
    """The allowed spellings, for error messages and ``--help``."""
    return ", ".join(f"'{b.usage}'" for b in BACKENDS.values())


def gpu_backend(backend: str | None = None) -> str:
    """The backend spec in force: ``backend`` when given, else ``ZEUS_GPU``, else ``""`` (auto)."""
    spec = backend if backend is not None else os.environ.get("ZEUS_GPU", "")
    return spec.strip()


def hardware_backends() -> list[str]:
    """The hardware backends (NVIDIA, AMD, ...) in the order the auto choice tries them."""
    return [name for name, b in BACKENDS.items() if b.hardware]


def auto_backend() -> str | None:
    """The first hardware backend (table order) that finds a GPU, or None. Probes are cached."""
    return next((name for name in hardware_backends() if _module(name).available()), None)


def hardware_status() -> dict[str, tuple[bool, str]]:
    """Per hardware backend: whether it finds a GPU, and its own words on what it finds."""
    return {
        name: (_module(name).available(), _module(name).status()) for name in hardware_backends()
    }


def backend_or_replay(profile: str, count: int = 1) -> str:
    """For scripts (examples, demos): ``ZEUS_GPU`` when set, else the auto choice when it finds a
    GPU, else ``count`` replay GPUs of ``profile``. The caller says which it got; a library never
    falls back to replay by itself."""
    spec = gpu_backend() or auto_backend()
    if spec:
        return spec
    return f"replay:{profile}" + (f":{count}" if count > 1 else "")


def parse_backend(backend: str) -> tuple[str, str]:
    """Split a backend spec into (name, argument); ``ZeusConfigError`` for an unknown name."""
    name, _, arg = backend.strip().partition(":")
    if name not in BACKENDS:
        raise ZeusConfigError(
            f"GPU backend (ZEUS_GPU) {backend!r} is unknown; allowed {backend_help()}"
        )
    return name, arg


def get_gpus(indices: list[int] | None = None, backend: str | None = None) -> list[GPU]:
    """The GPUs of `backend` (default: env ``ZEUS_GPU``, else `auto_backend`), restricted to
    `indices` when given."""
    spec = gpu_backend(backend) or auto_backend()
    if not spec:
        logger.info("no GPU found (%s) and ZEUS_GPU is unset: no GPUs", _status_line())
        if indices:
            raise GPUNotFoundError(
                f"GPU indices {indices} requested but no GPU is available ({_status_line()}); "
                f"set ZEUS_GPU to one of {backend_help()}"
            )
        return []
    name, arg = parse_backend(spec)
    gpus: list[GPU] = _module(name).open_gpus(arg, indices)
    return gpus


def _module(name: str) -> Any:
    return importlib.import_module(BACKENDS[name].module)


def _status_line() -> str:
    return "; ".join(
        f"{BACKENDS[n].hardware}: {words}" for n, (_, words) in hardware_status().items()
    )


def open_gpus(arg: str, indices: list[int] | None) -> list[GPU]:
    """The ``none`` backend: no GPU at all."""
    if arg:
        raise ZeusConfigError(f"GPU backend 'none' takes no argument, got 'none:{arg}'")
    if indices:
        raise GPUNotFoundError(f"GPU indices {indices} requested but the GPU backend is 'none'")
    return []


def select_indices(indices: list[int] | None, count: int, spec: str) -> list[int]:
    """``indices`` (default: all of ``count``), each checked to exist."""
    wanted = list(range(count)) if indices is None else list(indices)
    for i in wanted:
        if not 0 <= i < count:
            raise GPUNotFoundError(
                f"GPU index {i} does not exist: backend {spec!r} has indices 0..{count - 1}"
            )
    return wanted
