"""Framework synchronisation at measurement-window edges, so queued GPU kernels are counted.

A framework that the process has not imported has queued nothing, so its sync is skipped without
importing it (importing torch to find that out would cost seconds).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from zeus.errors import ZeusConfigError

SyncFn = Callable[[], object]

FRAMEWORKS = ("torch", "jax", "cupy", "none")


def _torch_sync(torch: Any, gpu_indices: Sequence[int]) -> None:
    if torch.cuda.is_available():
        for i in gpu_indices:
            torch.cuda.synchronize(i)


def _jax_sync(jax: Any, gpu_indices: Sequence[int]) -> None:
    (jax.device_put(0.0) + 0).block_until_ready()


def _cupy_sync(cupy: Any, gpu_indices: Sequence[int]) -> None:
    for i in gpu_indices:
        cupy.cuda.Device(i).synchronize()


_SYNCERS = {"torch": _torch_sync, "jax": _jax_sync, "cupy": _cupy_sync}


def make_sync(framework: str | SyncFn, gpu_indices: Sequence[int]) -> SyncFn:
    """A no-argument function that waits for the framework's queued work on these GPUs."""
    if callable(framework):
        return framework
    if framework not in FRAMEWORKS:
        raise ZeusConfigError(
            f"sync_execution_with {framework!r} is unknown; allowed: {', '.join(FRAMEWORKS)} "
            "or a callable taking no arguments"
        )
    if framework == "none":
        return _noop
    syncer = _SYNCERS[framework]
    indices = list(gpu_indices)

    def sync() -> None:
        module = sys.modules.get(framework)
        if module is not None:
            syncer(module, indices)

    return sync


def _noop() -> None:
    return None
