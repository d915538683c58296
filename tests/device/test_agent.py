"""The agent backend passes the device contract in front of replay GPUs and of the fake NVML module,
served by a real agent on a UNIX socket; and it sees only the GPUs the process sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.helpers import InProcessAgent, settings_in
from tests.device.contract import GPUContract
from tests.device.fake_nvml import FakeBoard, FakeNVML
from zeus.device import get_gpus
from zeus.device.agent import AgentGPU, agent_gpus
from zeus.device.base import GPU
from zeus.device.nvml import nvml_gpus
from zeus.device.replay import ReplayGPU
from zeus.errors import GPUNotFoundError


def _boards(n: int) -> list[FakeBoard]:
    return [FakeBoard(uuid=f"GPU-{i}bbb-{i}", power_mw=200_000 + 10_000 * i) for i in range(n)]


class TestAgentReplayContract(GPUContract):
    @pytest.fixture
    def gpu(self, short_dir: Path, tmp_path: Path) -> Iterator[AgentGPU]:
        replay = ReplayGPU("a40-imagenet-resnet50", state_dir=tmp_path)
        with InProcessAgent(settings_in(short_dir), [replay]) as agent:
            yield get_gpus(backend=f"agent:{agent.socket}")[0]


class TestAgentWallClockReplayContract(GPUContract):
    @pytest.fixture
    def gpu(self, short_dir: Path, tmp_path: Path) -> Iterator[AgentGPU]:
        replay = ReplayGPU("a40-resnet50", state_dir=tmp_path, clock="wall")
        with InProcessAgent(settings_in(short_dir), [replay]) as agent:
            yield agent_gpus(agent.socket)[0]


class TestAgentNVMLContract(GPUContract):
    @pytest.fixture
    def gpu(self, short_dir: Path) -> Iterator[AgentGPU]:
        self.nvml = FakeNVML(_boards(2))
        with InProcessAgent(settings_in(short_dir), nvml_gpus(pynvml=self.nvml)) as agent:
            yield agent_gpus(agent.socket, pynvml=FakeNVML(_boards(2)))[1]

    def advance(self, gpu: GPU) -> None:
        self.nvml.tick(0.5)


class TestAgentPreVoltaContract(GPUContract):
    @pytest.fixture
    def gpu(self, short_dir: Path) -> Iterator[AgentGPU]:
        nvml = FakeNVML([FakeBoard(uuid="GPU-p100", arch=4)])
        with InProcessAgent(settings_in(short_dir), nvml_gpus(pynvml=nvml)) as agent:
            yield agent_gpus(agent.socket, pynvml=nvml)[0]


def test_a_container_sees_only_its_gpus_matched_by_uuid(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent serves the node's 4 GPUs; a process that NVML shows 2 of (CUDA_VISIBLE_DEVICES
    here; a container's device list in a cluster) gets those 2, in its own order and indices."""
    node = FakeNVML(_boards(4))
    with InProcessAgent(settings_in(short_dir), nvml_gpus(pynvml=node)) as agent:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
        gpus = agent_gpus(agent.socket, pynvml=FakeNVML(_boards(4)))
        assert [(g.index, g.uuid, g.node_index) for g in gpus] == [
            (0, "GPU-3bbb-3", 3),
            (1, "GPU-1bbb-1", 1),
        ]
        assert gpus[0].power_w() == 230.0  # board 3's power, read by the agent
        gpus[0].set_power_limit_w(150)
        assert node.boards[3].limit_mw == 150_000 and node.boards[0].limit_mw == 400_000
        with pytest.raises(GPUNotFoundError, match=r"GPU index 2 does not exist.*0\.\.1"):
            agent_gpus(agent.socket, [2], pynvml=FakeNVML(_boards(4)))


def test_a_gpu_the_agent_does_not_serve_is_named(short_dir: Path) -> None:
    with InProcessAgent(settings_in(short_dir), nvml_gpus(pynvml=FakeNVML(_boards(1)))) as agent:
        stranger = FakeNVML([FakeBoard(uuid="GPU-elsewhere")])
        with pytest.raises(GPUNotFoundError, match=r"GPU-elsewhere.*not served by the Zeus agent"):
            agent_gpus(agent.socket, pynvml=stranger)
