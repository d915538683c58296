"""Validate the hardware backends (NVIDIA through NVML, AMD through AMD SMI) on real GPUs. Prints
findings; prints "no NVIDIA GPU" / "no AMD GPU" with the reason and exits 0 where there is none.

Run: ``.venv/bin/python bench/gpu_check.py [--backend nvml|amd] [--gpu 0] [--seconds 10]``

1. Lists the GPU, its limits and capabilities (energy counter, permission to set limits, a shared
   board such as a MIG instance, temperature and throttle reasons).
2. Energy counter vs integrated power over the same window, with a matmul load when torch sees the
   GPU (CUDA, or ROCm's HIP through the same ``torch.cuda`` API; idle otherwise); prints the
   difference in %. Drivers average their power readings (up to 1 s on recent boards), so expect a
   few % on short windows.
3. ZeusMonitor on the same load: window time and energy, method; temperature and throttle reasons
   after the load.
4. Power limit: set a lower limit, read it back, restore the original (always, in ``finally``); or
   print why it may not (permission, a shared board).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from zeus.device import BACKENDS, GPU, get_gpus, hardware_backends, hardware_status
from zeus.errors import ZeusDeviceError
from zeus.monitor import PowerMonitor, ZeusMonitor


def make_load(index: int) -> tuple[Callable[[float], None], str]:
    """A function keeping GPU ``index`` busy for some seconds, and its description."""
    try:
        import torch
    except ImportError:
        return time.sleep, "idle (torch not installed)"
    if not torch.cuda.is_available():
        return time.sleep, "idle (torch has no CUDA)"
    device = torch.device("cuda", index)
    a = torch.randn(8192, 8192, device=device)
    b = torch.randn(8192, 8192, device=device)

    def run(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(10):
                torch.matmul(a, b)
            torch.cuda.synchronize(device)

    return run, "8192x8192 fp32 matmul loop (torch)"


def check_counter_vs_power(gpu: GPU, load: Callable[[float], None], seconds: float) -> None:
    if not gpu.capabilities.energy_counter:
        print("  energy counter: not available: ZeusMonitor integrates sampled power")
        return
    with PowerMonitor([gpu], interval_s=0.01) as sampler:
        time.sleep(0.5)  # samples before the window, so its start is interpolated
        start_wall, start_j = time.time(), gpu.energy_j()
        load(seconds)
        end_wall, end_j = time.time(), gpu.energy_j()
        time.sleep(0.5)
    counter_j = end_j - start_j
    integrated_j = sampler.energy_j(start_wall, end_wall)[gpu.index]
    diff = (integrated_j - counter_j) / counter_j * 100 if counter_j else float("nan")
    print(
        f"  counter {counter_j:.1f} J vs integrated power {integrated_j:.1f} J over "
        f"{end_wall - start_wall:.2f} s: difference {diff:+.2f}%  "
        f"(avg {counter_j / (end_wall - start_wall):.1f} W)"
    )


def check_monitor(gpu: GPU, load: Callable[[float], None], seconds: float) -> None:
    monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="torch")
    try:
        with monitor.window("gpu-check") as window:
            load(seconds)
    finally:
        monitor.close()
    m = window.measurement
    assert m is not None
    print(f"  ZeusMonitor: {m.time_s:.2f} s, {m.total_energy_j:.1f} J, method {m.method}")


def check_thermals(gpu: GPU, when: str) -> None:
    if not gpu.capabilities.thermals:
        print(f"  thermals {when}: not readable")
        return
    t = gpu.thermals()
    reasons = "unknown" if t.throttle_reasons is None else sorted(t.throttle_reasons) or "none"
    print(f"  thermals {when}: {t.temperature_c} C, throttle reasons {reasons}")


def check_power_limit(gpu: GPU) -> None:
    if not gpu.capabilities.set_power_limit:
        print(f"  power limit: cannot set: {gpu.set_power_limit_denied_reason}")
        return
    original = gpu.get_power_limit_w()
    target = max(gpu.min_power_limit_w, original - 50)
    try:
        gpu.set_power_limit_w(target)
        read_back = gpu.get_power_limit_w()
        verdict = "ok" if read_back == target else "MISMATCH"
        print(f"  power limit: set {target} W, read back {read_back} W: {verdict}")
    except ZeusDeviceError as e:
        print(f"  power limit: refused (clear message expected): {e}")
    finally:
        try:
            gpu.set_power_limit_w(original)
            print(f"  power limit: restored to {gpu.get_power_limit_w()} W (was {original} W)")
        except ZeusDeviceError as e:
            print(f"  power limit: could not restore {original} W: {e}")


def check_backend(name: str, indices: list[int] | None, seconds: float) -> None:
    for gpu in get_gpus(indices, backend=name):
        caps = gpu.capabilities
        print(
            f"{BACKENDS[name].hardware} GPU {gpu.index}: {gpu.name} (board {gpu.board_id}"
            f"{', shared' if caps.shared_board else ''}); limits {gpu.min_power_limit_w}.."
            f"{gpu.max_power_limit_w} W, default {gpu.default_power_limit_w} W, now "
            f"{gpu.get_power_limit_w()} W; energy counter {caps.energy_counter}; "
            f"set limit {caps.set_power_limit}; power now {gpu.power_w():.1f} W"
        )
        load, what = make_load(gpu.index)
        print(f"  load: {what}")
        check_thermals(gpu, "before load")
        check_counter_vs_power(gpu, load, seconds)
        check_monitor(gpu, load, min(seconds, 5.0))
        check_thermals(gpu, "after load")
        check_power_limit(gpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=hardware_backends(), help="default: every one found")
    parser.add_argument("--gpu", type=int, default=None, help="index to check (default: all)")
    parser.add_argument("--seconds", type=float, default=10.0, help="load window length")
    args = parser.parse_args()
    for name, (available, words) in hardware_status().items():
        if args.backend not in (None, name):
            continue
        if not available:
            print(f"no {BACKENDS[name].hardware} GPU on this machine ({words}); nothing to check")
            continue
        check_backend(name, None if args.gpu is None else [args.gpu], args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
