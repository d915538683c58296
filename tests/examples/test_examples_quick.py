"""The quick mode of every example that no other test runs, as a user would start it.

(Trace-driven, power-limit, Hugging Face and BSO examples are run by their own tests in
tests/simulate/test_examples.py, tests/examples/test_pl_examples.py and test_bso_examples.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(script: str, *args: str, cwd: Path, timeout_s: int = 300) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_drift_scenario_quick_writes_a_plot(tmp_path: Path) -> None:
    out = run_example("drift/drift_scenario.py", "--quick", "--plot", "drift.png", cwd=tmp_path)
    assert (tmp_path / "drift.png").read_bytes()[:4] == b"\x89PNG"
    lines = {
        line.split(":")[0].strip(): line for line in out.splitlines() if "after the shift" in line
    }
    after = {k: float(v.split(",")[-1].split("%")[0].split()[-1]) for k, v in lines.items()}
    # percent of post-shift picks on the optimum: the window makes the paper's policy follow, and
    # the default policy follows at least as well as the paper's
    assert after["pruning-gts window 5"] > after["pruning-gts unwindowed"] + 30
    assert after["local-search-ts window 5"] >= after["pruning-gts window 5"]


@pytest.mark.slow
def test_run_zeus_quick_drives_train_py(tmp_path: Path) -> None:
    out = run_example("zeus_dataloader/run_zeus.py", "--quick", "--out", "run", cwd=tmp_path)
    series = json.loads((tmp_path / "run" / "series.json").read_text())
    reached = [r for r in series["runs"] if r["status"] == "reached"]
    assert len(reached) == 2
    assert reached[0]["batch_size"] == 64  # the policy starts at the default batch size
    assert all(r["energy_j"] > 0 and r["epochs"] >= 1 for r in reached)
    assert "replay GPU" in out and "history:" in out


@pytest.mark.slow
def test_custom_policy_quick_runs_in_simulator_and_master(tmp_path: Path) -> None:
    out = run_example("custom_policy.py", "--quick", "--out", "run", cwd=tmp_path)
    assert "epsilon-greedy (ours): energy saved vs Default" in out
    series = json.loads((tmp_path / "run" / "series.json").read_text())
    assert series["policy_name"] == "EpsilonGreedyBatchSizeOptimizer"
    assert [r["batch_size"] for r in series["runs"][:2]] == [8, 16]  # default first, then ascending
    assert series["policy_state"]["jobs"][0]["untried"] == [32, 64, 128]
    assert "history and policy state: run/series.json" in out  # kept: --out was given
