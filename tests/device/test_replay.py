"""Replay GPU: the device contract, profiles built from the shipped data, virtual time, persistence."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.device.contract import GPUContract
from zeus.device import get_gpus
from zeus.device.replay import FORWARD_FRACTION, ReplayGPU, list_profiles, load_profile
from zeus.device.replay_profiles import SAMPLES_PER_EPOCH, STEPS_PER_WINDOW, Curve, ReplayProfile
from zeus.errors import ZeusConfigError


class TestReplayContract(GPUContract):
    @pytest.fixture
    def gpu(self, tmp_path: Path) -> ReplayGPU:
        return ReplayGPU("a40-resnet50", state_dir=tmp_path)


class TestReplayFamilyContract(GPUContract):
    @pytest.fixture
    def gpu(self, tmp_path: Path) -> ReplayGPU:
        return ReplayGPU("v100-cifar100-shufflenetv2", state_dir=tmp_path)


class TestWallClockReplayContract(GPUContract):
    @pytest.fixture
    def gpu(self, tmp_path: Path) -> ReplayGPU:
        return ReplayGPU("a40-resnet50", state_dir=tmp_path, clock="wall")


# -- profiles from the shipped data ------------------------------------------------------------------


def test_profile_names_follow_the_contract() -> None:
    names = list_profiles()
    for expected in (
        "a40-resnet50",
        "v100-bert-base-uncased",
        "a40-resnet50-x4",
        "a40-imagenet-resnet50",
        "v100-cifar100-shufflenetv2",
        "v100-cifar100-shufflenetv2-adam",
        "v100-cifar100-shufflenetv2-bs1024",
        "v100-cifar100-shufflenetv2-adam-bs1024",
        "p100-imagenet-resnet50-bs128",
    ):
        assert expected in names
    assert names == sorted(names)


def test_window_log_profile_is_energy_over_elapsed_and_a_window_of_steps() -> None:
    # First data row of A40+resnet50+gpu0.csv is the 300 W window: 6224.886 J over 24.0116 s.
    profile = load_profile("a40-resnet50")
    assert profile.max_power_limit_w == 300 and profile.default_power_limit_w == 300
    assert profile.min_power_limit_w == 100
    assert profile.batch_sizes == () and profile.reference_batch_size is None
    for batch_size in (None, 8, 1024):  # the log does not say its batch size: every step alike
        at_max = profile.at(batch_size, 300)
        assert at_max.power_w == pytest.approx(6224.88599999249 / 24.011604165658355)
        assert at_max.step_time_s == pytest.approx(24.011604165658355 / STEPS_PER_WINDOW)
        assert at_max.derived_from == ()
    assert profile.at(None, 100).step_time_s > 2.5 * profile.at(None, 300).step_time_s


def test_multi_gpu_profile_keeps_per_gpu_power() -> None:
    profile = load_profile("a40-resnet50-x4")
    assert profile.num_gpus == 4
    # 300 W row: gpu3 used 1129.595 J over 8.22609 s, gpu0 1067.513 J.
    assert profile.at(None, 300, gpu=3).power_w == pytest.approx(
        1129.594999998808 / 8.226085375994444
    )
    assert profile.at(None, 300, gpu=0).power_w == pytest.approx(
        1067.512999996543 / 8.226085375994444
    )


def test_trace_family_holds_every_batch_size_with_its_step_time() -> None:
    profile = load_profile("a40-imagenet-resnet50")
    assert profile.batch_sizes == (8, 16, 32, 64, 128, 192, 256, 360, 512)
    # summary_power_a40.csv: imagenet,resnet50,64,adadelta,300,3954.57,243.97788753968482
    at_max = profile.at(64, 300)
    assert at_max.step_time_s == pytest.approx(3954.57 * 64 / SAMPLES_PER_EPOCH["imagenet"])
    assert at_max.power_w == pytest.approx(243.97788753968482)
    assert profile.source == "zeus/data/traces/summary_power_a40.csv"
    pinned = load_profile("a40-imagenet-resnet50-bs64")
    assert pinned.batch_sizes == (64,)
    assert pinned.at(64, 200) == profile.at(64, 200)


def test_optimizer_variants_of_one_workload() -> None:
    default = load_profile("v100-cifar100-shufflenetv2-bs1024")
    assert default.curves[0].power_limits_w == (100, 125, 150, 175, 200, 225, 250)
    assert default.at(1024, 100).power_w == pytest.approx(86.86460850784009)  # adadelta row
    adam = load_profile("v100-cifar100-shufflenetv2-adam-bs1024")
    assert adam.at(1024, 100).power_w == pytest.approx(91.0042349567595)


def test_unmeasured_batch_size_is_derived_in_log_batch_size() -> None:
    profile = load_profile("a40-imagenet-resnet50")
    lo, hi = profile.at(32, 250), profile.at(64, 250)
    mid = profile.at(45, 250)  # log2(45) is 0.49 of the way from 32 to 64
    frac = (1.4918530963296748 - 1.0) / 1.0  # log2(45 / 16) - 1
    per_sample = lo.step_time_s / 32 + frac * (hi.step_time_s / 64 - lo.step_time_s / 32)
    assert mid.step_time_s == pytest.approx(45 * per_sample)
    assert mid.power_w == pytest.approx(lo.power_w + frac * (hi.power_w - lo.power_w))
    assert mid.derived_from == (32, 64)
    beyond = profile.at(1024, 250)  # above the largest: the largest's time per sample and power
    largest = profile.at(512, 250)
    assert beyond.step_time_s == pytest.approx(2 * largest.step_time_s)
    assert beyond.power_w == largest.power_w and beyond.derived_from == (512,)


def test_names_are_case_and_underscore_insensitive() -> None:
    assert (
        load_profile("V100-SQUAD-bert_base_uncased-bs32").name
        == "v100-squad-bert-base-uncased-bs32"
    )


def test_unknown_profile_lists_allowed_names() -> None:
    with pytest.raises(ZeusConfigError, match="a40-imagenet-resnet50"):
        load_profile("h100-gpt5")


def test_interpolates_between_measured_limits() -> None:
    profile = load_profile("a40-resnet50")
    mid = profile.at(None, 262.5)
    lo, hi = profile.at(None, 250), profile.at(None, 275)
    assert mid.power_w == pytest.approx((lo.power_w + hi.power_w) / 2)
    assert mid.step_time_s == pytest.approx((lo.step_time_s + hi.step_time_s) / 2)


# -- virtual time ------------------------------------------------------------------------------------


def test_a_step_lasts_what_the_profile_says_at_the_current_limit(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-imagenet-resnet50", state_dir=tmp_path)
    profile = gpu.profile
    gpu.step(64)
    gpu.set_power_limit_w(150)
    gpu.step(64)
    gpu.step(128, forward_only=True)
    expected_s = (
        profile.at(64, 300).step_time_s
        + profile.at(64, 150).step_time_s
        + profile.at(128, 150).step_time_s * FORWARD_FRACTION
    )
    expected_j = (
        profile.at(64, 300).step_time_s * profile.at(64, 300).power_w
        + profile.at(64, 150).step_time_s * profile.at(64, 150).power_w
        + profile.at(128, 150).step_time_s * FORWARD_FRACTION * profile.at(128, 150).power_w
    )
    assert gpu.clock_s() == pytest.approx(expected_s)
    assert gpu.energy_j() == pytest.approx(expected_j)
    assert gpu.steps == 3


def test_wall_time_does_not_count(tmp_path: Path) -> None:
    """However long the CPU takes between steps, the figures are the same."""
    fast = ReplayGPU("a40-resnet50", state_dir=tmp_path / "fast")
    slow = ReplayGPU("a40-resnet50", state_dir=tmp_path / "slow")
    for _ in range(5):
        fast.step(32)
        slow.step(32)
        time.sleep(0.01)
        slow.synchronize()
    assert (fast.clock_s(), fast.energy_j()) == (slow.clock_s(), slow.energy_j())


def test_handles_of_one_gpu_share_its_clock(tmp_path: Path) -> None:
    """Like hardware: every object for the same replay GPU in a process sees the same device."""
    a = ReplayGPU("a40-resnet50", index=1, state_dir=tmp_path)
    b = get_gpus([1], backend="replay:a40-resnet50:2")[0]  # state dir from ZEUS_STATE_DIR
    c = ReplayGPU("a40-resnet50", index=1, state_dir=tmp_path)
    a.step()
    assert c.clock_s() == a.clock_s() > 0 and c.energy_j() == a.energy_j()
    assert b.clock_s() == 0.0  # another state dir: another device
    assert ReplayGPU("a40-resnet50", index=0, state_dir=tmp_path).clock_s() == 0.0


def test_steps_without_a_batch_size_use_the_reference_and_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = ReplayGPU("a40-imagenet-resnet50", state_dir=tmp_path)
    assert gpu.profile.reference_batch_size == 128  # middle of 8 .. 512
    with caplog.at_level(logging.WARNING):
        gpu.step()
        gpu.step()
    assert gpu.clock_s() == pytest.approx(2 * gpu.profile.at(128, 300).step_time_s)
    warnings = [r.getMessage() for r in caplog.records if "without a batch size" in r.getMessage()]
    assert len(warnings) == 1 and "batch size 128" in warnings[0]


def test_an_unmeasured_batch_size_is_derived_and_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = ReplayGPU("a40-imagenet-resnet50", state_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        gpu.step(48)
        gpu.step(48)
        gpu.step(64)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "no data for batch size 48" in messages[0] and "32 and 64" in messages[0]
    assert "8, 16, 32, 64, 128, 192, 256, 360, 512" in messages[0]


def test_power_timeline_follows_steps(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    assert gpu.power_timeline_w(0.0, 1.0) == []
    gpu.step()
    t1 = gpu.clock_s()
    gpu.step()
    gpu.set_power_limit_w(100)
    gpu.step()
    p_max, p_100 = gpu.profile.at(None, 300).power_w, gpu.profile.at(None, 100).power_w
    assert gpu.power_timeline_w(0.0, gpu.clock_s()) == [(0.0, p_max), (2 * t1, p_100)]
    assert gpu.power_timeline_w(t1, gpu.clock_s()) == [(t1, p_max), (2 * t1, p_100)]


def test_step_rejects_a_non_positive_batch_size(tmp_path: Path) -> None:
    with pytest.raises(ZeusConfigError, match="batch_size must be >= 1"):
        ReplayGPU("a40-resnet50", state_dir=tmp_path).step(0)


# -- wall clock (explicit) ---------------------------------------------------------------------------


def test_wall_clock_energy_integrates_profile_power(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path, clock="wall")
    gpu.set_power_limit_w(150)
    watts = gpu.profile.at(None, 150).power_w
    outer_start = time.monotonic()
    e0 = gpu.energy_j()
    inner_start = time.monotonic()
    time.sleep(0.05)
    inner_end = time.monotonic()
    e1 = gpu.energy_j()
    outer_end = time.monotonic()
    assert watts * (inner_end - inner_start) <= e1 - e0 <= watts * (outer_end - outer_start)


def test_wall_clock_synchronize_stretches_work_by_the_slowdown(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path, clock="wall")
    gpu.set_power_limit_w(100)
    slowdown = gpu.profile.at(None, 100).step_time_s / gpu.profile.at(None, 300).step_time_s
    gpu.synchronize()  # starts the clock
    start = time.monotonic()
    time.sleep(0.02)  # "CPU work" enqueuing GPU work
    gpu.synchronize()
    assert time.monotonic() - start >= 0.02 * slowdown * 0.99


@pytest.mark.parametrize(
    ("spec", "clock", "count"),
    [("replay:a40-resnet50:wall", "wall", 1), ("replay:a40-resnet50:2:wall", "wall", 2)],
)
def test_backend_spec_selects_the_wall_clock(spec: str, clock: str, count: int) -> None:
    gpus = get_gpus(backend=spec)
    assert len(gpus) == count
    assert all(isinstance(g, ReplayGPU) and g.clock == clock for g in gpus)
    assert not gpus[0].capabilities.virtual_time and gpus[0].capabilities.simulated


# -- persistence and profile objects -----------------------------------------------------------------


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


def test_a_limit_set_by_another_process_applies_to_the_next_step(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    code = (
        "from zeus.device.replay import ReplayGPU;"
        f"ReplayGPU('a40-resnet50', state_dir={str(tmp_path)!r}).set_power_limit_w(150)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    gpu.step()
    assert gpu.get_power_limit_w() == 150
    assert gpu.clock_s() == pytest.approx(gpu.profile.at(None, 150).step_time_s)


def test_state_dir_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEUS_STATE_DIR", str(tmp_path / "env-state"))
    gpu = ReplayGPU("v100-resnet50")
    gpu.set_power_limit_w(200)
    assert gpu.state_file.parent == tmp_path / "env-state"
    assert gpu.state_file.exists()


def test_non_integer_limit_is_rejected(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    with pytest.raises(ZeusConfigError, match="whole number"):
        gpu.set_power_limit_w(150.5)  # type: ignore[arg-type]


def test_explicit_profile_object(tmp_path: Path) -> None:
    curve = Curve(
        batch_size=16, power_limits_w=(60, 70), step_time_s=(0.15, 0.1), power_w=((50.0, 65.0),)
    )
    gpu = ReplayGPU(ReplayProfile("toy", "T4", (curve,), source="test"), state_dir=tmp_path)
    assert gpu.name == "NVIDIA T4 (replay)"
    assert gpu.power_w() == 65.0
    gpu.set_power_limit_w(65)
    assert gpu.power_w() == pytest.approx(57.5)
    gpu.step(16)
    assert gpu.clock_s() == pytest.approx(0.125)


def test_deleting_the_state_file_resets_to_default(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    gpu.set_power_limit_w(125)
    gpu.state_file.unlink()
    assert gpu.get_power_limit_w() == 300


@pytest.mark.parametrize(
    ("limits", "times", "powers", "message"),
    [
        ((70, 60), (0.1, 0.2), (50.0, 65.0), "ascending"),
        ((60, 70), (0.1, 0.2), (50.0,), "one value per power limit"),
        ((60, 70), (0.1, 0.2), (0.0, 65.0), "finite and > 0"),
        ((60, 70), (0.1, float("inf")), (50.0, 65.0), "finite and > 0"),
    ],
)
def test_invalid_curves(
    limits: tuple[int, ...], times: tuple[float, ...], powers: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ZeusConfigError, match=message):
        Curve(None, limits, times, (powers,))


def test_a_profile_needs_a_range_of_limits() -> None:
    curve = Curve(8, (60,), (0.1,), ((50.0,),))
    with pytest.raises(ZeusConfigError, match="two or more power limits"):
        ReplayProfile("flat", "T4", (curve,), source="test")
