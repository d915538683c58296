"""Framework syncs, driven with fake framework module objects (no import, no patching)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from zeus.errors import ZeusConfigError
from zeus.monitor.sync import _cupy_sync, _jax_sync, _torch_sync, make_sync


def test_torch_sync_waits_on_each_monitored_device() -> None:
    synced: list[int] = []
    cuda = SimpleNamespace(is_available=lambda: True, synchronize=synced.append)
    _torch_sync(SimpleNamespace(cuda=cuda), [2, 0])
    assert synced == [2, 0]


def test_torch_without_cuda_does_nothing() -> None:
    def fail(i: int) -> None:
        raise AssertionError("synchronize called without CUDA")

    _torch_sync(
        SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: False, synchronize=fail)), [0]
    )


def test_cupy_sync_per_device() -> None:
    synced: list[int] = []

    class Device:
        def __init__(self, i: int) -> None:
            self.i = i

        def synchronize(self) -> None:
            synced.append(self.i)

    _cupy_sync(SimpleNamespace(cuda=SimpleNamespace(Device=Device)), [1, 3])
    assert synced == [1, 3]


def test_jax_sync_blocks_until_ready() -> None:
    waited: list[bool] = []

    class Array:
        def __add__(self, other: object) -> Array:
            return self

        def block_until_ready(self) -> Array:
            waited.append(True)
            return self

    _jax_sync(SimpleNamespace(device_put=lambda x: Array()), [0])
    assert waited == [True]


def test_framework_not_imported_is_skipped() -> None:
    # cupy is not installed here, so the process cannot have queued CuPy work: a no-op, no import.
    make_sync("cupy", [0])()


def test_unknown_framework_and_callable() -> None:
    with pytest.raises(ZeusConfigError, match="allowed: torch, jax, cupy, none"):
        make_sync("mxnet", [0])
    calls: list[int] = []
    make_sync(lambda: calls.append(1), [0])()
    assert calls == [1]
