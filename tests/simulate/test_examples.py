"""The trace-driven examples run with the original underscore flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[2] / "examples" / "trace_driven"


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=120
    )


def test_run_single() -> None:
    r = run("run_single.py", "--dataset", "squad", "--gpu", "p100", "--b_0", "16",
            "--num_recurrence", "6", "--eta_knob", "0.5", "--beta_knob", "2", "--seed", "3")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("recurrence ") == 6
    assert "energy saved vs Default" in r.stdout


def test_run_alibaba_and_bad_input() -> None:
    r = run("run_alibaba.py", "--dataset", "sentiment140", "--num_groups", "1", "--gpu", "v100")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sentiment140-000:")
    bad = run("run_single.py", "--eta_knob", "3")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: eta_knob must be >= 0 and <= 1, got 3.0"
