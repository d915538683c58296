"""Every power-limit example runs in --quick mode on replay GPUs, and what it prints about the chosen
limit and the energy saved agrees with the replay profile it ran on and with its own measurements."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from zeus.device.replay import load_profile
from zeus.optimizer.power_limit import (
    PowerLimitMeasurement,
    SelectionContext,
    ZeusCost,
    choose_power_limit,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROW = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", re.MULTILINE)
CHOSEN = re.compile(r"chosen power limit: (\d+) W \(maximum (\d+) W\)")
SAVED = re.compile(
    r"energy per step: ([\d.]+) J at (\d+) W -> ([\d.]+) J at (\d+) W: saved (-?[\d.]+)%"
)


@dataclass(frozen=True)
class Case:
    script: str
    args: tuple[str, ...]
    profile: str
    num_gpus: int = 1

    @property
    def zeus_gpu(self) -> str:
        suffix = f":{self.num_gpus}" if self.num_gpus > 1 else ""
        return f"replay:{self.profile}{suffix}"


CASES = [
    pytest.param(Case("power_limit_optimizer/train_single.py", (), "a40-resnet50"), id="single"),
    pytest.param(
        Case("zeus_dataloader/train.py", ("--epochs", "3", "--batch-size", "32"), "a40-resnet50"),
        id="zeus_dataloader",
    ),
    pytest.param(
        Case("huggingface/train_hf.py", (), "v100-bert-base-uncased"),
        id="huggingface",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        Case("power_limit_optimizer/train_dp.py", ("--nproc", "2"), "a40-resnet50", num_gpus=2),
        id="data_parallel",
        marks=pytest.mark.slow,
    ),
]


def run_example(case: Case, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "ZEUS_GPU": case.zeus_gpu,
        "ZEUS_STATE_DIR": str(tmp_path / "state"),
        "OMP_NUM_THREADS": "1",  # tiny models: thread pools only add contention on a busy CPU
    }
    script = EXAMPLES / case.script
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", *case.args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("case", CASES)
def test_quick_example_reports_savings_that_match_the_profile(case: Case, tmp_path: Path) -> None:
    out = run_example(case, tmp_path)
    profile = load_profile(case.profile)
    rows = {
        int(limit): (float(ms) / 1e3, float(energy_j), float(power_w))
        for limit, ms, energy_j, power_w in ROW.findall(out)
    }
    # Every candidate of the replay GPU's range was measured, 25 W apart from the maximum.
    assert sorted(rows) == list(range(profile.min_power_limit_w, profile.max_power_limit_w + 1, 25))
    for limit_w, (time_s, energy_j, power_w) in rows.items():
        expected_w = case.num_gpus * profile.power_at(limit_w)
        # One process: the window's power is the profile's. Data parallel: energy is summed over
        # ranks whose windows differ slightly in length while time is the longest, so a bit lower.
        low = 0.98 if case.num_gpus == 1 else 0.7
        assert low * expected_w <= power_w <= 1.02 * expected_w, (limit_w, power_w, expected_w)
        assert energy_j == pytest.approx(time_s * power_w, rel=0.03, abs=2e-4)

    chosen = CHOSEN.search(out)
    assert chosen, out
    chosen_w, max_w = int(chosen[1]), int(chosen[2])
    assert max_w == profile.max_power_limit_w
    # The chosen limit is ZeusCost(0.5)'s pick from the printed measurements (up to print rounding).
    measurements = [PowerLimitMeasurement(w, t, e) for w, (t, e, _) in rows.items()]
    best_w = choose_power_limit(measurements, ZeusCost(0.5), max_w, case.num_gpus)
    cost = {
        m.power_limit_w: ZeusCost(0.5).scores([m], _context(max_w, case.num_gpus))[m.power_limit_w]
        for m in measurements
    }
    assert cost[chosen_w] <= cost[best_w] * 1.01

    saved = SAVED.search(out)
    assert saved, out
    at_max_j, saved_max_w, at_chosen_j, saved_chosen_w, saved_pct = saved.groups()
    assert (int(saved_max_w), int(saved_chosen_w)) == (max_w, chosen_w)
    assert float(at_max_j) == pytest.approx(rows[max_w][1], abs=1e-4)
    assert float(at_chosen_j) == pytest.approx(rows[chosen_w][1], abs=1e-4)
    expected_pct = (1 - rows[chosen_w][1] / rows[max_w][1]) * 100
    assert float(saved_pct) == pytest.approx(expected_pct, abs=0.1)
    assert "replay GPU" in out  # figures from a replay GPU say so


def _context(max_w: int, num_gpus: int) -> SelectionContext:
    return SelectionContext(max_power_limit_w=max_w, num_gpus=num_gpus)


def test_zeus_dataloader_example_reads_a_cifar_style_folder(tmp_path: Path) -> None:
    """``--data-dir`` with ``train/<class>/*.png``; ZeusMaster-style environment, observe only."""
    import json

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    for split, count in (("train", 16), ("test", 4)):
        for name, rgb in colours.items():
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                noise = rng.integers(-30, 30, size=(16, 16, 3))
                pixels = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    env = {
        **os.environ,
        "ZEUS_GPU": "replay:a40-resnet50",
        "ZEUS_STATE_DIR": str(tmp_path / "state"),
        "ZEUS_LOG_DIR": str(tmp_path / "logs"),
        "ZEUS_JOB_ID": "folder-run",
        "ZEUS_USE_OPTIMAL_PL": "false",
        "OMP_NUM_THREADS": "1",
    }
    script = EXAMPLES / "zeus_dataloader" / "train.py"
    args = ["--data-dir", str(tmp_path / "data"), "--batch-size", "8", "--epochs", "2"]
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.findall(r"epoch (\d): test accuracy", proc.stdout) == ["0", "1"]
    result = json.loads((tmp_path / "logs" / "folder-run.result.json").read_text())
    assert (result["epochs"], result["batch_size"], result["power_limit_w"]) == (2, 8, 300)
    assert result["energy_j"] > 0
