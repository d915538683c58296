"""The recurring job of `zeus demo` and the GPU it runs on.

The demo is a recurring job (`zeus.demo.train`: a small CNN on scikit-learn's digits, trained for
real) driven by `ZeusMaster` with the pruning + Gaussian Thompson Sampling batch-size policy; each run
picks its power limit just in time (`ZeusDataLoader` + `GlobalPowerLimitOptimizer`). The Default
configuration (the default batch size at the maximum power limit) is measured by a dedicated run first.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from zeus.job import Job

logger = logging.getLogger(__name__)

DEMO_PROFILE = "a40-resnet50"
DEMO_BATCH_SIZES = [8, 16, 32, 64, 128]
DEMO_DEFAULT_BS = 8
DEMO_LR = 0.001
DEMO_TARGET = 0.97
DEMO_MAX_EPOCHS = 15
DEMO_BETA = 3.0
"""Early-stopping factor; a little above the usual 2 because timing on a busy CPU is noisy."""
DEMO_PROFILE_PARAMS = (2, 5)
"""Warmup and measured steps per power limit: a 128-sample batch gives 35 steps per epoch."""


def demo_job(workdir: Path, server: str | None = None, bso_job_id: str = "zeus-demo") -> Job:
    """The demo's recurring job. Every recurrence retrains on the same data with the same seed, so
    the runs of one batch size differ only by measurement noise (and their power limit).

    With ``server``, each run asks that BSO server for its batch size (the template has no ``{bs}``).
    """
    job = Job(
        dataset="digits",
        network="cnn",
        optimizer="adam",
        target_metric=DEMO_TARGET,
        max_epochs=DEMO_MAX_EPOCHS,
        default_bs=DEMO_DEFAULT_BS,
        default_lr=DEMO_LR,
        workdir=str(workdir),
        command=(
            sys.executable,
            "-m",
            "zeus.demo.train",
            "--batch-size",
            "{bs}",
            "--lr",
            "{lr}",
            "--epochs",
            "{epochs}",
        ),
    )
    if server is None:
        return job
    command = (
        sys.executable,
        "-m",
        "zeus.demo.train",
        "--server",
        server,
        "--bso-job-id",
        bso_job_id,
        "--batch-sizes",
        ",".join(str(b) for b in DEMO_BATCH_SIZES),
        "--default-batch-size",
        str(DEMO_DEFAULT_BS),
        "--default-lr",
        str(DEMO_LR),
        "--target-metric",
        "{target_metric}",
        "--beta-knob",
        str(DEMO_BETA),
        "--epochs",
        "{epochs}",
    )
    return dataclasses.replace(job, command=command)


@dataclass(frozen=True)
class DemoGPU:
    """Which GPUs the demo's jobs use, and how to say it."""

    backend: str | None
    """Value for ``ZEUS_GPU`` in the runs (None: leave the environment as it is)."""
    description: str
    simulated: bool
    max_power_limit_w: int


def choose_gpu(profile: str = DEMO_PROFILE) -> DemoGPU:
    """NVIDIA GPUs when NVML finds some (or ``ZEUS_GPU`` says so), else one replay GPU."""
    import os

    from zeus.device import get_gpus

    env = os.environ.get("ZEUS_GPU", "").strip()
    if not env or env == "nvml":
        from zeus.device.nvml import nvml_available

        gpus = get_gpus(backend="nvml") if env == "nvml" or nvml_available() else []
        if gpus:
            names = ", ".join(sorted({g.name for g in gpus}))
            return DemoGPU(
                None, f"{len(gpus)} NVIDIA GPU(s): {names}", False, gpus[0].max_power_limit_w
            )
        env = f"replay:{profile}"
    gpus = get_gpus(backend=env)
    if not gpus:
        from zeus.errors import ZeusConfigError

        raise ZeusConfigError(
            f"ZEUS_GPU={env!r} gives no GPU; the demo needs one (or a replay GPU)"
        )
    simulated = env.startswith("replay:")
    if simulated:
        from zeus.device.replay import load_profile

        loaded = load_profile(env.split(":")[1])
        gpus[0].reset_power_limit()  # the Default run must start at the default (maximum) limit
        description = (
            f"replay GPU '{loaded.name}' (power and speed per power limit measured on an NVIDIA "
            f"{loaded.gpu_model}); energy and time figures are SIMULATED by the replay GPU"
        )
    else:
        description = f"{len(gpus)} GPU(s) from ZEUS_GPU={env}"
    return DemoGPU(env, description, simulated, gpus[0].max_power_limit_w)
