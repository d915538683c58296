"""The recurring job of `zeus demo` and the GPU it runs on.

The demo is a recurring job (`zeus.demo.train`: a small CNN on scikit-learn's digits, trained for
real) driven by `ZeusMaster` with Zeus's default batch-size policy (`zeus.policy.DEFAULT_POLICY`); each run
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

DEMO_PROFILE = "a40-imagenet-resnet50"
"""ResNet-50 on ImageNet measured on an A40 at each of the demo's batch sizes (published traces)."""
DEMO_BATCH_SIZES = [8, 16, 32, 64, 128]
DEMO_DEFAULT_BS = 8
DEMO_LR = 0.001
DEMO_TARGET = 0.97
DEMO_MAX_EPOCHS = 15
DEMO_BETA = 2.0
"""Early-stopping factor: a run stops once it has cost twice the cheapest successful run."""
DEMO_PROFILE_PARAMS = (2, 5)
"""Warmup and measured steps per power limit: a 128-sample batch gives 36 steps per epoch."""


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

    backend: str
    """Value for ``ZEUS_GPU`` in the runs."""
    description: str
    simulated: bool
    max_power_limit_w: int


def choose_gpu(profile: str = DEMO_PROFILE) -> DemoGPU:
    """``ZEUS_GPU`` when set, NVIDIA or AMD GPUs when NVML or AMD SMI finds some, else one replay GPU."""
    from zeus.device import backend_or_replay, get_gpus
    from zeus.errors import ZeusConfigError

    spec = backend_or_replay(profile)
    gpus = get_gpus(backend=spec)
    if not gpus:
        raise ZeusConfigError(
            f"ZEUS_GPU={spec!r} gives no GPU; the demo needs one (or a replay GPU)"
        )
    if not gpus[0].capabilities.simulated:
        names = ", ".join(sorted({g.name for g in gpus}))
        return DemoGPU(spec, f"{len(gpus)} GPU(s): {names}", False, gpus[0].max_power_limit_w)
    from zeus.device.replay import load_profile

    if gpus[0].get_power_limit_w() != gpus[0].default_power_limit_w:
        gpus[0].reset_power_limit()  # the Default run must start at the default (maximum) limit
    if spec.startswith("replay:"):
        loaded = load_profile(spec.split(":")[1])
        source = (
            f"replay GPU '{loaded.name}' (step time and power per batch size and power limit "
            f"measured on an NVIDIA {loaded.gpu_model})"
        )
    else:  # replay GPUs served by the node agent
        source = f"{gpus[0].name} GPU(s) of {spec}"
    description = f"{source}; energy and time figures are SIMULATED by the replay GPU"
    return DemoGPU(spec, description, True, gpus[0].max_power_limit_w)
