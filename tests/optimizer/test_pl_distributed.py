"""Data parallel: two gloo processes, each with its own replay GPU, reach one decision."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zeus.device.replay import load_profile

PROFILE = "v100-resnet50"
MAX_W = 250
CHILD = Path(__file__).with_name("pl_dp_child.py")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_job(mode: str, tmp_path: Path, wait_for: tuple[int, ...] = (0, 1)) -> list[dict[str, Any]]:
    port = _free_port()
    children = []
    for rank in range(2):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            ZEUS_GPU=f"replay:{PROFILE}:2",
            PYTHONPATH=str(REPO),
        )
        children.append(
            subprocess.Popen(
                [sys.executable, str(CHILD), mode, str(tmp_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    logs = {}
    try:
        for rank in wait_for:
            _, logs[rank] = children[rank].communicate(timeout=120)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    results = []
    for rank in wait_for:
        out = tmp_path / f"rank{rank}.json"
        assert out.exists(), f"rank {rank} wrote no result:\n{logs[rank]}"
        results.append(json.loads(out.read_text()))
    return results


def test_ranks_reach_one_decision_apply_it_everywhere_and_restore(tmp_path: Path) -> None:
    rank0, rank1 = _run_job("ok", tmp_path)
    assert "error" not in rank0 and "error" not in rank1
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["num_gpus"] == rank1["num_gpus"] == 2  # MAXPOWER of the cost counts both GPUs
    chosen = rank0["chosen"]
    assert chosen == rank1["chosen"] and chosen is not None
    assert rank0["measurements"] == rank1["measurements"]  # combined, not per rank
    # Both GPUs ran at the chosen limit during training, whichever rank looked.
    assert rank0["limits_during"] == rank1["limits_during"] == [chosen, chosen]
    assert rank0["limits_after"] == rank1["limits_after"] == [MAX_W, MAX_W]
    # Energy is summed over the two GPUs (twice one replay GPU's power: both ran the same steps at
    # the same limit on virtual time), not one rank's or the mean; time is the profile's step time.
    profile = load_profile(PROFILE)
    energies = {}
    for limit, m in rank0["measurements"].items():
        at = profile.at(None, int(limit))
        assert m["time_per_step_s"] == pytest.approx(at.step_time_s, rel=1e-9)
        assert m["energy_per_step_j"] == pytest.approx(2 * at.power_w * at.step_time_s, rel=1e-9)
        energies[int(limit)] = m["energy_per_step_j"]
    assert chosen == min(energies, key=energies.__getitem__)  # Energy() on the combined data
    # The next recurrence reuses rank 0's saved profile on every rank: no profiling at all.
    assert not (tmp_path / "profiles-of-rank-1").exists()
    for result in (rank0, rank1):
        assert result["rerun"] == {"state": "done", "chosen": chosen, "limits": [chosen, chosen]}


def test_a_rank_that_skips_a_hook_makes_every_rank_fail_clearly(tmp_path: Path) -> None:
    rank0, rank1 = _run_job("skip-step", tmp_path)
    for result in (rank0, rank1):
        assert "ranks out of step in on_step_end" in result["error"]
        # rank 1 skipped its 4th on_step_end: it reached the window end one step later
        steps_begun = [int(n) for n in re.findall(r"on_step_begin (\d+)x", result["error"])]
        assert len(steps_begun) == 2 and steps_begun[1] == steps_begun[0] + 1
        assert "every rank must call every GlobalPowerLimitOptimizer hook" in result["error"]
        assert result["limits_after"][result["rank"]] == MAX_W  # each rank restored its GPU


def test_a_rank_that_stops_calling_hooks_times_out_instead_of_hanging(tmp_path: Path) -> None:
    (rank0,) = _run_job("stall", tmp_path, wait_for=(0,))
    assert "rank 0: GlobalPowerLimitOptimizer.on_step_end got no answer" in rank0["error"]
    assert "within 3 s" in rank0["error"]
    assert rank0["limits_after"][0] == MAX_W
