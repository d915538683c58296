"""The agent's GPUs, found by index or UUID, and the one place that turns device errors into
agent errors.

Every device call runs on the agent's event loop thread (handlers and the holder watcher are
coroutines), so no two calls reach a device at once and no lock is needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from zeus.agent.errors import (
    AgentNotPermitted,
    DeviceFailure,
    InvalidRequest,
    NotSupported,
    UnknownGPU,
)
from zeus.device.base import GPU
from zeus.errors import (
    NotSupportedError,
    ZeusConfigError,
    ZeusDeviceError,
    ZeusPermissionError,
)


class Devices:
    def __init__(self, gpus: Sequence[GPU]) -> None:
        self.gpus = list(gpus)
        self.by_uuid = {gpu.uuid: gpu for gpu in self.gpus}
        if len(self.by_uuid) != len(self.gpus):
            raise ZeusConfigError(f"the agent's GPUs must have distinct UUIDs, got {self.gpus}")

    def find(self, ref: str) -> GPU:
        """A GPU by its index on this node (``"0"``) or its UUID."""
        gpu = self.by_uuid.get(ref)
        if gpu is None and ref.isdigit() and int(ref) < len(self.gpus):
            gpu = self.gpus[int(ref)]
        if gpu is None:
            allowed = f"0..{len(self.gpus) - 1} or a UUID" if self.gpus else "none (no GPU)"
            raise UnknownGPU(f"GPU {ref!r} is not on this node: allowed indices {allowed}")
        return gpu

    def index_of(self, gpu: GPU) -> int:
        return self.gpus.index(gpu)

    def describe(self, gpu: GPU) -> str:
        return f"GPU {self.index_of(gpu)} ({gpu.uuid})"


@contextmanager
def device_errors(what: str) -> Iterator[None]:
    """Map the device's errors to the agent's: bad values are the caller's, the rest the node's."""
    try:
        yield
    except ZeusConfigError as e:
        raise InvalidRequest(str(e)) from e
    except NotSupportedError as e:
        raise NotSupported(str(e)) from e
    except ZeusPermissionError as e:
        raise AgentNotPermitted(
            f"{what}: the agent itself may not do this ({e}); run it as root or with CAP_SYS_ADMIN"
        ) from e
    except ZeusDeviceError as e:
        raise DeviceFailure(f"{what}: {e}") from e
