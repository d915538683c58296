"""Device backends behind small protocols (`zeus.device.base`). Nothing else imports a vendor library.

`get_gpus` is the one place that picks a GPU backend, and `gpu_backend` the one place that reads
``ZEUS_GPU``. Both run only when called, never at import. A backend is one module with a function
``open_gpus(arg, indices)`` plus one line in `BACKENDS`:

* ``"nvml"``: the NVIDIA GPUs this process sees (after ``CUDA_VISIBLE_DEVICES``);
* ``"replay:<profile>[:<n>][:wall]"``: one or ``n`` replay GPUs (`zeus.device.replay`), on virtual
  time unless ``:wall`` asks for real time;
* ``"none"``: no GPU;
* unset (argument None and no ``ZEUS_GPU``): NVML GPUs if NVML works, else none. Never silently replay.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass

from zeus.device.base import CPU, GPU, CPUEnergy, GPUCapabilities
from zeus.errors import GPUNotFoundError, ZeusConfigError

__all__ = [
    "BACKENDS",
    "CPU",
    "GPU",
    "CPUEnergy",
    "GPUCapabilities",
    "backend_or_replay",
    "get_gpus",
    "gpu_backend",
    "parse_backend",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """A GPU backend: the module whose ``open_gpus(arg, indices)`` makes its GPUs, and its syntax."""

    module: str
    usage: str


BACKENDS: dict[str, Backend] = {
    "nvml": Backend("zeus.device.nvml", "nvml"),
    "replay": Backend("zeus.device.replay", "replay:<profile>[:<n>][:wall]"),
    "none": Backend("zeus.device", "none"),
}


def backend_help() -> str:
    """The allowed spellings, for error messages and ``--help``."""
    return ", ".join(f"'{b.usage}'" for b in BACKENDS.values())


def gpu_backend(backend: str | None = None) -> str:
    """The backend spec in force: ``backend`` when given, else ``ZEUS_GPU``, else ``""`` (auto)."""
    spec = backend if backend is not None else os.environ.get("ZEUS_GPU", "")
    return spec.strip()


def backend_or_replay(profile: str, count: int = 1) -> str:
    """For scripts (examples, demos): ``ZEUS_GPU`` when set, ``"nvml"`` when NVML finds a GPU,
    else ``count`` replay GPUs of ``profile``. The caller says which it got; a library never falls
    back to replay by itself."""
    spec = gpu_backend()
    if spec:
        return spec
    from zeus.device.nvml import nvml_available

    if nvml_available():
        return "nvml"
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
    """The GPUs of `backend` (default: env ``ZEUS_GPU``), restricted to `indices` when given."""
    spec = gpu_backend(backend)
    if not spec:
        from zeus.device.nvml import nvml_available

        if not nvml_available():
            logger.info("no NVIDIA GPU found through NVML and ZEUS_GPU is unset: no GPUs")
            if indices:
                raise GPUNotFoundError(
                    f"GPU indices {indices} requested but no GPU is available (no NVML); "
                    f"set ZEUS_GPU to one of {backend_help()}"
                )
            return []
        spec = "nvml"
    name, arg = parse_backend(spec)
    module = importlib.import_module(BACKENDS[name].module)
    gpus: list[GPU] = module.open_gpus(arg, indices)
    return gpus


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
