"""Data parallel with torch.distributed (gloo, two real processes): rank 0 asks, every rank agrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import LiveServer, free_port
from tests.client.helpers import unique_job_id

HERE = Path(__file__).parent

RANK = """
import json, sys, time
sys.path.insert(0, {here!r})
import torch.distributed as dist
from tests.client.helpers import replay_monitor, spec
from zeus.optimizer.batch_size import BatchSizeOptimizer, ZeusBSOEarlyStop, broadcast_batch_size

url, out = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank = dist.get_rank()
results = []
for job_id, max_epochs in zip(sys.argv[3::2], map(int, sys.argv[4::2])):
    monitor = replay_monitor(num_gpus=2, index=rank)
    bso = BatchSizeOptimizer(monitor, url, spec(job_id=job_id, max_epochs=max_epochs), rank=rank)
    batch_size = broadcast_batch_size(bso)
    bso.on_train_begin()
    result = {{"batch_size": batch_size, "trial": bso.trial_number, "early_stop": False}}
    epochs = 0
    try:
        for metric in (0.3, 0.5, 0.95):
            time.sleep(0.05 * (rank + 1))  # ranks do not finish an epoch at the same moment
            for _ in range(3):
                monitor.step(batch_size)  # the epoch's steps, timed by the replay GPU
            epochs += 1
            bso.on_evaluate(metric)
            if bso.training_finished:
                break
    except ZeusBSOEarlyStop:
        result["early_stop"] = True
    result.update(epochs=epochs, finished=bso.training_finished, converged=bso.converged,
                  energy_j=bso.state_dict()["energy_j"])
    results.append(result)
    bso.close()
open(out, "w").write(json.dumps(results))
dist.destroy_process_group()
"""


def _run_two_ranks(server: LiveServer, tmp_path: Path, jobs: dict[str, int]) -> list[Any]:
    """Both ranks run one trial of each job (job id -> max_epochs); per job, both ranks' results."""
    script = tmp_path / "rank.py"
    script.write_text(RANK.format(here=str(HERE)))
    port = str(free_port())
    job_args = [str(x) for item in jobs.items() for x in item]
    processes = []
    for rank in (0, 1):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK=str(rank))
        env["WORLD_SIZE"] = "2"
        out = tmp_path / f"rank{rank}.json"
        args = [sys.executable, str(script), server.url, str(out), *job_args]
        processes.append(subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True))
    for p in processes:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    per_rank = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    return [list(pair) for pair in zip(*per_rank, strict=True)]


def test_ranks_share_each_trial_and_its_decision(bso_server: LiveServer, tmp_path: Path) -> None:
    converging, stopping = unique_job_id(), unique_job_id()
    ranks, stopped = _run_two_ranks(bso_server, tmp_path, {converging: 5, stopping: 2})

    assert [r["batch_size"] for r in ranks] == [32, 32]
    assert [r["trial"] for r in ranks] == [1, 1]
    assert all(r["finished"] and r["converged"] and r["epochs"] == 3 for r in ranks)
    job = bso_server.get(f"/jobs/{converging}").json()
    assert job["spec"]["number_of_gpus"] == 2 and job["spec"]["max_power"] == 600
    (trial,) = job["trials"]
    assert trial["status"] == "succeeded" and trial["current_epoch"] == 3
    # the reported energy is the sum over both ranks' GPUs
    assert trial["energy"] == pytest.approx(sum(r["energy_j"] for r in ranks))
    assert min(r["energy_j"] for r in ranks) > 0

    # every rank stops early at the same epoch
    assert all(r["early_stop"] and r["epochs"] == 2 and not r["converged"] for r in stopped)
    (trial,) = bso_server.get(f"/jobs/{stopping}").json()["trials"]
    assert trial["current_epoch"] == 2 and trial["converged"] is False
