"""Device backends behind small protocols (`zeus.device.base`). Nothing else imports a vendor library.

`get_gpus` is the one place that picks a GPU backend. It runs only when called, never at import:

* ``"nvml"``: the NVIDIA GPUs this process sees (after ``CUDA_VISIBLE_DEVICES``);
* ``"replay:<profile>"`` / ``"replay:<profile>:<n>"``: one or ``n`` replay GPUs (`zeus.device.replay`);
* ``"none"``: no GPU;
* unset (argument None and no ``ZEUS_GPU``): NVML GPUs if NVML works, else none. Never silently replay.
"""

from __future__ import annotations

import logging
import os

from zeus.device.base import CPU, GPU, CPUEnergy, GPUCapabilities
from zeus.errors import GPUNotFoundError, ZeusConfigError

__all__ = ["CPU", "GPU", "CPUEnergy", "GPUCapabilities", "get_gpus", "parse_backend"]

logger = logging.getLogger(__name__)

_BACKEND_HELP = "'nvml', 'replay:<profile>', 'replay:<profile>:<n>' or 'none'"


def parse_backend(backend: str) -> tuple[str, str | None, int]:
    """Split a backend spec into (kind, replay profile, replay GPU count); validates it."""
    spec = backend.strip()
    if spec in ("nvml", "none"):
        return spec, None, 0
    if spec.startswith("replay:"):
        parts = spec.split(":")
        if len(parts) == 2 and parts[1]:
            return "replay", parts[1], 1
        if len(parts) == 3 and parts[1] and parts[2].isdigit() and int(parts[2]) >= 1:
            return "replay", parts[1], int(parts[2])
        raise ZeusConfigError(
            f"GPU backend {backend!r}: replay count must be a whole number >= 1; allowed {_BACKEND_HELP}"
        )
    raise ZeusConfigError(f"GPU backend (ZEUS_GPU) {backend!r} is unknown; allowed {_BACKEND_HELP}")


def get_gpus(indices: list[int] | None = None, backend: str | None = None) -> list[GPU]:
    """The GPUs of `backend` (default: env ``ZEUS_GPU``), restricted to `indices` when given."""
    spec = backend if backend is not None else os.environ.get("ZEUS_GPU", "").strip()
    if not spec:
        from zeus.device.nvml import nvml_available, nvml_gpus

        if not nvml_available():
            logger.info("no NVIDIA GPU found through NVML and ZEUS_GPU is unset: no GPUs")
            if indices:
                raise GPUNotFoundError(
                    f"GPU indices {indices} requested but no GPU is available (no NVML); "
                    f"set ZEUS_GPU to {_BACKEND_HELP}"
                )
            return []
        return list(nvml_gpus(indices))
    kind, profile, count = parse_backend(spec)
    if kind == "none":
        if indices:
            raise GPUNotFoundError(f"GPU indices {indices} requested but the GPU backend is 'none'")
        return []
    if kind == "nvml":
        from zeus.device.nvml import nvml_gpus

        return list(nvml_gpus(indices))
    from zeus.device.replay import ReplayGPU, load_profile

    assert profile is not None
    loaded = load_profile(profile)
    wanted = list(range(count)) if indices is None else list(indices)
    for i in wanted:
        if not 0 <= i < count:
            raise GPUNotFoundError(
                f"GPU index {i} does not exist: backend {spec!r} has indices 0..{count - 1}"
            )
    return [ReplayGPU(loaded, index=i) for i in wanted]
