"""`get_gpus`: backend selection by argument or ZEUS_GPU, index checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zeus.device import auto_backend, get_gpus, hardware_status
from zeus.device.replay import ReplayGPU
from zeus.errors import GPUNotFoundError, ZeusConfigError

REPO = Path(__file__).resolve().parents[2]


def test_replay_backend_argument() -> None:
    gpus = get_gpus(backend="replay:a40-resnet50")
    assert len(gpus) == 1
    assert isinstance(gpus[0], ReplayGPU) and gpus[0].index == 0


def test_replay_backend_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEUS_GPU", "replay:a40-resnet50-x4:4")
    gpus = get_gpus()
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert gpus[3].power_w() != gpus[0].power_w()  # per-GPU figures of the multi-GPU log


def test_indices_select_replay_gpus() -> None:
    gpus = get_gpus([2, 0], backend="replay:v100-resnet50:3")
    assert [g.index for g in gpus] == [2, 0]


def test_missing_index_names_the_allowed_ones() -> None:
    with pytest.raises(GPUNotFoundError, match=r"0\.\.1"):
        get_gpus([5], backend="replay:v100-resnet50:2")


def test_none_backend() -> None:
    assert get_gpus(backend="none") == []
    with pytest.raises(GPUNotFoundError):
        get_gpus([0], backend="none")


@pytest.mark.parametrize(
    "spec", ["cuda", "replay:", "replay:a40-resnet50:0", "replay:a40-resnet50:x"]
)
def test_bad_backend_names_the_allowed_values(spec: str) -> None:
    with pytest.raises(ZeusConfigError, match="replay:<profile>"):
        get_gpus(backend=spec)


def test_unset_never_silently_replays() -> None:
    # No NVIDIA or AMD GPU on the test machine: unset means no GPUs at all, not a replay GPU.
    assert all(not isinstance(g, ReplayGPU) for g in get_gpus())


def test_unset_tries_every_vendor_and_says_why_none() -> None:
    """No GPU here: the auto choice asked NVML and AMD SMI, and the error carries both answers."""
    assert auto_backend() is None
    assert list(hardware_status()) == ["nvml", "amd"]
    with pytest.raises(GPUNotFoundError, match=r"NVIDIA: .*; AMD: .*libamd_smi\.so"):
        get_gpus([0])


def test_bad_backend_lists_amd() -> None:
    with pytest.raises(ZeusConfigError, match="'nvml', 'amd', 'replay:"):
        get_gpus(backend="rocm")


def test_gpu_check_says_which_vendors_are_missing() -> None:
    """bench/gpu_check.py runs here and names both absent vendors (it checks them on hardware)."""
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--seconds", "1"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "no NVIDIA GPU on this machine" in out
    assert "no AMD GPU on this machine" in out


def test_importing_zeus_touches_no_hardware() -> None:
    code = (
        "import sys, zeus.device, zeus.device.nvml, zeus.device.amd, zeus.device.replay, "
        "zeus.device.rapl, zeus.monitor, zeus.analyze, zeus.cli;"
        "assert 'pynvml' not in sys.modules, 'pynvml imported at import time';"
        "assert 'amdsmi' not in sys.modules, 'amdsmi imported at import time';"
        "assert 'torch' not in sys.modules, 'torch imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
