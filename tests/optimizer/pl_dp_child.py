"""One rank of a 2-process data-parallel job on replay GPUs (gloo), for the data-parallel tests.

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p ZEUS_GPU=replay:<profile>:2 \\
        python pl_dp_child.py <mode> <out-dir>

Rank r monitors replay GPU r. Writes ``<out-dir>/rank<r>.json``. Modes: ``ok`` (every hook on every
rank), ``skip-step`` (rank 1 skips one on_step_end), ``stall`` (rank 1 stops calling hooks).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist

from zeus.device import get_gpus
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import Energy, GlobalPowerLimitOptimizer, ZeusDistributedError


def persisted_limits_w() -> list[int]:
    """The limit every replay GPU of the job has now, as any process sees it."""
    return [gpu.get_power_limit_w() for gpu in get_gpus()]


def main() -> None:
    mode, out_dir = sys.argv[1], Path(sys.argv[2])
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    dist.init_process_group("gloo", init_method="env://")
    rank = dist.get_rank()
    monitor = ZeusMonitor(gpu_indices=[rank], cpus=[], sync_execution_with=lambda: None)
    # Only rank 0 reads and writes saved profiles: rank 1 gets a directory that stays empty.
    profile_dir = out_dir / ("profiles" if rank == 0 else "profiles-of-rank-1")
    plo = GlobalPowerLimitOptimizer(
        monitor,
        Energy(),
        warmup_steps=1,
        profile_steps=5,
        collective_timeout_s=3,
        profile_path=profile_dir,
    )
    result: dict[str, Any] = {"rank": rank}
    try:
        train(plo, mode, rank, result)
    except ZeusDistributedError as error:
        result["error"] = str(error)
    finally:
        plo.on_train_end()
    if mode == "ok":
        dist.barrier()  # both ranks have restored their GPU
    result["limits_after"] = persisted_limits_w()
    if mode == "ok":
        result["rerun"] = rerun_with_saved_profile(monitor, profile_dir)
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    if mode == "ok":
        dist.destroy_process_group()


def rerun_with_saved_profile(monitor: ZeusMonitor, profile_dir: Path) -> dict[str, Any]:
    """A recurrence of the same job: decides at the first hook, without profiling."""
    plo = GlobalPowerLimitOptimizer(monitor, Energy(), profile_path=profile_dir)
    plo.on_train_begin()
    rerun = {"state": plo.state, "chosen": plo.chosen_power_limit_w}
    dist.barrier()  # every rank has applied the choice ...
    rerun["limits"] = persisted_limits_w()
    dist.barrier()  # ... and looked, before any rank restores
    plo.on_train_end()
    return rerun


def train(plo: GlobalPowerLimitOptimizer, mode: str, rank: int, result: dict[str, Any]) -> None:
    plo.on_train_begin()
    step = 0
    for _ in range(2):
        plo.on_epoch_begin()
        for _ in range(30):
            step += 1
            if mode == "stall" and rank == 1 and step == 5:
                time.sleep(30)  # stops calling hooks; the parent kills it
            plo.on_step_begin()
            time.sleep(0.005)
            if mode == "ok":
                dist.barrier()  # the gradient all-reduce of a real data-parallel step
                if plo.state == "done" and "limits_during" not in result:
                    result["limits_during"] = persisted_limits_w()  # every rank applied it
            if not (mode == "skip-step" and rank == 1 and step == 4):
                plo.on_step_end()
        plo.on_epoch_end()
    result["chosen"] = plo.chosen_power_limit_w
    result["world_size"] = plo.world_size
    result["num_gpus"] = plo.num_gpus
    result["measurements"] = {k: m.to_dict() for k, m in plo.measurements.items()}


if __name__ == "__main__":
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    main()
