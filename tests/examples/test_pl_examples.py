"""Every power-limit example runs in --quick mode without a GPU (each falls back to a replay GPU and
says so), and what it prints about the chosen limit and the energy saved is the replay profile's data
for the batch size in use: virtual time makes the measurements exact, whatever the machine's load."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from zeus.device.replay import load_profile
from zeus.optimizer.power_limit import ZeusCost, choose_power_limit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROW = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", re.MULTILINE)
CHOSEN = re.compile(r"chosen power limit: (\d+) W \(maximum (\d+) W\)")
SAVED = re.compile(
    r"energy per step: ([\d.]+) J at (\d+) W -> ([\d.]+) J at (\d+) W: "
    r"saved (-?[\d.]+)%, time per step ([+-][\d.]+)%"
)


@dataclass(frozen=True)
class Case:
    script: str
    args: tuple[str, ...]
    profile: str
    batch_size: int
    """Samples per step on each GPU."""
    num_gpus: int = 1

    @property
    def zeus_gpu(self) -> str:
        suffix = f":{self.num_gpus}" if self.num_gpus > 1 else ""
        return f"replay:{self.profile}{suffix}"


CASES = [
    pytest.param(
        Case("power_limit_optimizer/train_single.py", (), "a40-imagenet-resnet50", 32), id="single"
    ),
    pytest.param(
        Case(
            "zeus_dataloader/train.py",
            ("--epochs", "3", "--batch-size", "32"),
            "a40-imagenet-resnet50",
            32,
        ),
        id="zeus_dataloader",
    ),
    pytest.param(
        Case("huggingface/train_hf.py", (), "v100-sentiment140-bert-base-uncased", 32),
        id="huggingface",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        Case(
            "power_limit_optimizer/train_dp.py",
            ("--nproc", "2"),
            "a40-imagenet-resnet50",
            16,
            num_gpus=2,
        ),
        id="data_parallel",
        marks=pytest.mark.slow,
    ),
]


def run_example(case: Case, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "ZEUS_STATE_DIR": str(tmp_path / "state"),
        "OMP_NUM_THREADS": "1",  # tiny models: thread pools only add contention on a busy CPU
    }
    env.pop("ZEUS_GPU", None)  # no GPU here: the example picks its replay GPU by itself
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
def test_quick_example_reports_the_profiles_savings(case: Case, tmp_path: Path) -> None:
    out = run_example(case, tmp_path)
    assert f"GPU backend: {case.zeus_gpu}" in out  # the fallback is said, not silent
    profile = load_profile(case.profile)
    data = {  # per step of the whole job, from the profile: (time s, energy J)
        limit_w: (at.step_time_s, case.num_gpus * at.power_w * at.step_time_s)
        for limit_w in range(profile.max_power_limit_w, profile.min_power_limit_w - 1, -25)
        for at in [profile.at(case.batch_size, limit_w)]
    }
    rows = {
        int(limit): (float(ms) / 1e3, float(energy_j), float(power_w))
        for limit, ms, energy_j, power_w in ROW.findall(out)
    }
    # Every candidate was measured, and measured as the profile says (to print rounding).
    assert sorted(rows) == sorted(data)
    for limit_w, (time_s, energy_j, power_w) in rows.items():
        assert time_s == pytest.approx(data[limit_w][0], abs=6e-6)
        assert energy_j == pytest.approx(data[limit_w][1], abs=6e-5)
        assert power_w == pytest.approx(data[limit_w][1] / data[limit_w][0], abs=0.06)

    chosen = CHOSEN.search(out)
    assert chosen, out
    chosen_w, max_w = int(chosen[1]), int(chosen[2])
    assert max_w == profile.max_power_limit_w
    # The chosen limit is what ZeusCost(0.5) picks on the profile's own data.
    from_data = {w: (e / t, t) for w, (t, e) in data.items()}
    assert chosen_w == choose_power_limit(from_data, ZeusCost(0.5), max_w, case.num_gpus)

    saved = SAVED.search(out)
    assert saved, out
    at_max_j, saved_max_w, at_chosen_j, saved_chosen_w, saved_pct, time_pct = saved.groups()
    assert (int(saved_max_w), int(saved_chosen_w)) == (max_w, chosen_w)
    assert float(at_max_j) == pytest.approx(data[max_w][1], abs=6e-5)
    assert float(at_chosen_j) == pytest.approx(data[chosen_w][1], abs=6e-5)
    expected_saved = (1 - data[chosen_w][1] / data[max_w][1]) * 100
    expected_time = (data[chosen_w][0] / data[max_w][0] - 1) * 100
    assert float(saved_pct) == pytest.approx(expected_saved, abs=0.051)
    assert float(time_pct) == pytest.approx(expected_time, abs=0.051)
    assert "replay GPU" in out  # figures from a replay GPU say so


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
        "ZEUS_GPU": "replay:a40-imagenet-resnet50",
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
