"""Replay GPU: the device contract, profiles built from the shipped data, persistence, slowdown."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.device.contract import GPUContract
from zeus.device.replay import ReplayGPU, ReplayProfile, list_profiles, load_profile
from zeus.errors import ZeusConfigError


class TestReplayContract(GPUContract):
    @pytest.fixture
    def gpu(self, tmp_path: Path) -> ReplayGPU:
        return ReplayGPU("a40-resnet50", state_dir=tmp_path)


def test_profile_names_follow_the_contract() -> None:
    names = list_profiles()
    for expected in (
        "a40-resnet50",
        "v100-bert-base-uncased",
        "a40-resnet50-x4",
        "v100-cifar100-shufflenetv2-bs1024",
        "v100-cifar100-shufflenetv2-adam-bs1024",
        "p100-imagenet-resnet50-bs128",
    ):
        assert expected in names
    assert names == sorted(names)


def test_window_log_profile_is_energy_over_elapsed() -> None:
    # First data row of A40+resnet50+gpu0.csv is the 300 W window: 6224.886 J over 24.0116 s.
    profile = load_profile("a40-resnet50")
    assert profile.max_power_limit_w == 300 and profile.default_power_limit_w == 300
    assert profile.min_power_limit_w == 100
    assert profile.power_at(300) == pytest.approx(6224.88599999249 / 24.011604165658355)
    assert profile.rel_step_time_at(300) == 1.0
    assert profile.rel_step_time_at(100) > 2.5  # throttled hard at 100 W


def test_multi_gpu_profile_keeps_per_gpu_power() -> None:
    profile = load_profile("a40-resnet50-x4")
    assert profile.num_gpus == 4
    # 300 W row: gpu3 used 1129.595 J over 8.22609 s, gpu0 1067.513 J.
    assert profile.power_at(300, gpu=3) == pytest.approx(1129.594999998808 / 8.226085375994444)
    assert profile.power_at(300, gpu=0) == pytest.approx(1067.512999996543 / 8.226085375994444)


def test_trace_profile_uses_epoch_time_and_average_power() -> None:
    profile = load_profile("v100-cifar100-shufflenetv2-bs1024")
    assert profile.power_limits_w == (100, 125, 150, 175, 200, 225, 250)
    assert profile.power_at(100) == pytest.approx(86.86460850784009)  # adadelta row, not adam
    adam = load_profile("v100-cifar100-shufflenetv2-adam-bs1024")
    assert adam.power_at(100) == pytest.approx(91.0042349567595)


def test_names_are_case_and_underscore_insensitive() -> None:
    assert (
        load_profile("V100-SQUAD-bert_base_uncased-bs32").name
        == "v100-squad-bert-base-uncased-bs32"
    )


def test_unknown_profile_lists_allowed_names() -> None:
    with pytest.raises(ZeusConfigError, match="a40-resnet50"):
        load_profile("h100-gpt5")


def test_interpolates_between_measured_limits() -> None:
    profile = load_profile("a40-resnet50")
    mid = profile.power_at(262.5)
    assert mid == pytest.approx((profile.power_at(250) + profile.power_at(275)) / 2)


def test_limit_persists_across_instances_and_processes(tmp_path: Path) -> None:
    ReplayGPU("a40-resnet50", index=1, state_dir=tmp_path).set_power_limit_w(175)
    assert ReplayGPU("a40-resnet50", index=1, state_dir=tmp_path).get_power_limit_w() == 175
    assert ReplayGPU("a40-resnet50", index=0, state_dir=tmp_path).get_power_limit_w() == 300
    code = (
        "from zeus.device.replay import ReplayGPU;"
        f"print(ReplayGPU('a40-resnet50', index=1, state_dir={str(tmp_path)!r}).get_power_limit_w())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "175"


def test_sees_a_limit_set_by_another_instance(tmp_path: Path) -> None:
    observer = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    assert observer.get_power_limit_w() == 300
    ReplayGPU("a40-resnet50", state_dir=tmp_path).set_power_limit_w(150)
    assert observer.get_power_limit_w() == 150


def test_state_dir_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEUS_STATE_DIR", str(tmp_path / "env-state"))
    gpu = ReplayGPU("v100-resnet50")
    gpu.set_power_limit_w(200)
    assert gpu.state_file.parent == tmp_path / "env-state"
    assert gpu.state_file.exists()


def test_energy_integrates_profile_power(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    gpu.set_power_limit_w(150)
    watts = gpu.profile.power_at(150)
    outer_start = time.monotonic()
    e0 = gpu.energy_j()
    inner_start = time.monotonic()
    time.sleep(0.05)
    inner_end = time.monotonic()
    e1 = gpu.energy_j()
    outer_end = time.monotonic()
    assert watts * (inner_end - inner_start) <= e1 - e0 <= watts * (outer_end - outer_start)


def test_synchronize_stretches_work_by_relative_step_time(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    gpu.set_power_limit_w(100)
    rel = gpu.rel_step_time()
    gpu.synchronize()  # starts the clock
    start = time.monotonic()
    time.sleep(0.02)  # "CPU work" enqueuing GPU work
    gpu.synchronize()
    assert time.monotonic() - start >= 0.02 * rel * 0.99


def test_non_integer_limit_is_rejected(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    with pytest.raises(ZeusConfigError, match="whole number"):
        gpu.set_power_limit_w(150.5)  # type: ignore[arg-type]


def test_explicit_profile_object(tmp_path: Path) -> None:
    profile = ReplayProfile(
        name="toy",
        gpu_model="T4",
        power_limits_w=(60, 70),
        avg_power_w=(50.0, 65.0),
        rel_step_time=(1.5, 1.0),
        source="test",
    )
    gpu = ReplayGPU(profile, state_dir=tmp_path)
    assert gpu.name == "NVIDIA T4 (replay)"
    assert gpu.power_w() == 65.0
    gpu.set_power_limit_w(65)
    assert gpu.power_w() == pytest.approx(57.5)
    assert gpu.rel_step_time() == pytest.approx(1.25)


def test_deleting_the_state_file_resets_to_default(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    gpu.set_power_limit_w(125)
    gpu.state_file.unlink()
    assert gpu.get_power_limit_w() == 300


@pytest.mark.parametrize(
    ("limits", "powers", "message"),
    [
        ((70, 60), (50.0, 65.0), "ascending"),
        ((60, 70), (50.0,), "one value per power limit"),
        ((60, 70), (0.0, 65.0), "must be > 0"),
    ],
)
def test_invalid_profile_objects(
    limits: tuple[int, ...], powers: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ZeusConfigError, match=message):
        ReplayProfile("bad", "T4", limits, powers, (1.5, 1.0), source="test")
