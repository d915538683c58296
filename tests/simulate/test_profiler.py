"""`zeus profile` on the replay GPU: a small real ZeusDataLoader script, traces the simulator reads."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zeus.cli import app
from zeus.device.replay import load_profile
from zeus.errors import ZeusConfigError
from zeus.simulate.profiler import ProfileSpec, ProfilingError, _missing_limits, profile_workload

SCRIPT = """
import argparse, logging, torch
from torch.utils.data import TensorDataset
from zeus.run import ZeusDataLoader

p = argparse.ArgumentParser()
p.add_argument("--bs", type=int); p.add_argument("--epochs", type=int); p.add_argument("--seed", type=int)
a = p.parse_args()
logging.basicConfig(level=logging.INFO)
torch.manual_seed(a.seed)
g = torch.Generator().manual_seed(0)
x = torch.randn(512, 8, generator=g); y = (x[:, 0] + x[:, 1] > 0).long()
loader = ZeusDataLoader(TensorDataset(x, y), batch_size=a.bs, shuffle=True, max_epochs=a.epochs)
w = torch.zeros(8, 2, requires_grad=True)
for epoch in loader.epochs():
    for xb, yb in loader:
        loss = torch.nn.functional.cross_entropy(xb @ w, yb)
        loss.backward()
        with torch.no_grad():
            w -= 0.05 * w.grad; w.grad = None
    with torch.no_grad():
        metric = 1 - float(torch.nn.functional.cross_entropy(x @ w, y))  # 6-12 epochs to 0.7
    print(f"epoch {epoch}: {metric:.3f}", flush=True)
    loader.report_metric(metric)
"""


def spec_for(tmp_path: Path, **overrides: object) -> ProfileSpec:
    (tmp_path / "train.py").write_text(SCRIPT)
    fields: dict[str, object] = {
        "command": (
            sys.executable,
            "train.py",
            "--bs",
            "{bs}",
            "--epochs",
            "{epochs}",
            "--seed",
            "{seed}",
        ),
        "dataset": "toy",
        "network": "linear",
        "optimizer": "sgd",
        "batch_sizes": (32, 64),
        "target_metric": 0.7,
        "max_epochs": 30,
        "samples_per_epoch": 512,
        "workdir": tmp_path,
        "runs": 2,
        "profile_params": (1, 2),
        "env": {"ZEUS_GPU": "replay:a40-imagenet-resnet50", "OMP_NUM_THREADS": "1"},
    }
    fields.update(overrides)
    return ProfileSpec(**fields)  # type: ignore[arg-type]


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_profile_writes_a_trace_pair_the_simulator_runs(tmp_path: Path) -> None:
    outcome = profile_workload(spec_for(tmp_path), tmp_path / "out")

    assert outcome.gpu == "nvidia-a40-replay"
    profile_workload(spec_for(tmp_path), tmp_path / "again")  # deterministic on replay
    for name in ("summary_train.csv", "summary_power_nvidia-a40-replay.csv"):
        assert (tmp_path / "again" / name).read_text() == (tmp_path / "out" / name).read_text()
    assert outcome.missing_limits == {}
    train = read(outcome.train_trace)
    assert [(r["batch_size"], r["run"]) for r in train] == [
        ("32", "1"),
        ("32", "2"),
        ("64", "1"),
        ("64", "2"),
    ]
    assert all(r["target_epoch"] and int(r["target_epoch"]) >= 1 for r in train)
    assert all(r["dataset"] == "toy" and r["target_metric"] == "0.7" for r in train)

    power = read(outcome.power_trace)
    replay = load_profile("a40-imagenet-resnet50")
    for bs in (32, 64):
        rows = [r for r in power if r["batch_size"] == str(bs)]
        assert [int(r["power_limit"]) for r in rows] == list(range(100, 301, 25))
        for r in rows:  # what the replay GPU replays at each limit, for this batch size, exactly
            at = replay.at(bs, int(r["power_limit"]))
            assert float(r["average_power"]) == pytest.approx(at.power_w, rel=1e-9)
            steps_per_epoch = -(-512 // bs)
            assert float(r["time_per_epoch"]) == pytest.approx(
                at.step_time_s * steps_per_epoch, rel=1e-9
            )
    # the second run of a batch size reused the saved profile instead of profiling again
    second_log = (tmp_path / "out" / "logs" / "profile-bs32-run2.log").read_text()
    assert "reusing power-limit profile" in second_log

    result = CliRunner().invoke(
        app,
        [
            "simulate", "single", "--dataset", "toy", "--model", "linear", "--optimizer", "sgd",
            "--target-metric", "0.7", "--max-epochs", "30", "--b0", "64",
            "--train-trace", str(outcome.train_trace), "--gpu", str(outcome.power_trace),
            "--num-recurrence", "6",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_bad_specs_are_named_before_any_run(tmp_path: Path) -> None:
    with pytest.raises(ZeusConfigError, match=r"must pass the batch size to the job with \{bs\}"):
        profile_workload(spec_for(tmp_path, command=("python", "train.py")), tmp_path / "o")
    with pytest.raises(ZeusConfigError, match=r"\{width\}"):
        profile_workload(spec_for(tmp_path, command=("x", "{bs}", "{width}")), tmp_path / "o")
    with pytest.raises(ZeusConfigError, match="samples_per_epoch must be >= 1"):
        profile_workload(spec_for(tmp_path, samples_per_epoch=0), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_crashing_script_names_its_log(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, command=(sys.executable, "-c", "raise SystemExit(5)", "{bs}"), runs=1)
    with pytest.raises(
        ProfilingError,
        match=r"batch size 32 \(run 1\) exited with code 5; see .*profile-bs32-run1.log",
    ):
        profile_workload(spec, tmp_path / "out")


def test_limits_a_short_run_could_not_measure_are_reported() -> None:
    rows = [{"batch_size": 32, "power_limit": p} for p in (100, 200, 300)]
    rows += [{"batch_size": 64, "power_limit": p} for p in (200, 300)]
    assert _missing_limits(rows) == {64: [100]}
