"""A training process that dies mid-trial ends its trial as failed on the server, then dies as it
would have without Zeus (earlier handlers chained)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import LiveServer
from tests.client.helpers import unique_job_id

HERE = Path(__file__).parent

TRAINING = """
import signal, sys, time
sys.path.insert(0, {here!r})
from tests.client.helpers import replay_monitor, spec
from zeus.optimizer.batch_size import BatchSizeOptimizer

url, mode, job_id = sys.argv[1:4]
if mode == "chained":
    def previous(signum, frame):
        print("previous handler ran", flush=True)
        sys.exit(7)
    signal.signal(signal.SIGTERM, previous)
bso = BatchSizeOptimizer(replay_monitor(), url, spec(job_id=job_id))
bso.get_batch_size()
bso.on_train_begin()
if mode == "converge":
    bso.monitor.step(bso.current_batch_size)  # an epoch's work on the replay GPU
    bso.on_evaluate(0.99)
print("ready", flush=True)
if mode == "raise":
    raise RuntimeError("boom in training")
if mode == "raise_after_close":
    try:
        raise RuntimeError("boom in training")
    finally:
        bso.close()
if mode in ("exit", "converge"):
    sys.exit(0)
time.sleep(120)
"""


def _launch(server: LiveServer, mode: str, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "train.py"
    script.write_text(TRAINING.format(here=str(HERE)))
    job_id = unique_job_id()
    process = subprocess.Popen(
        [sys.executable, str(script), server.url, mode, job_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", line + (process.stderr.read() if process.stderr else "")
    return process, job_id


def _status(server: LiveServer, job_id: str) -> str:
    (trial,) = server.get(f"/jobs/{job_id}").json()["trials"]
    return str(trial["status"])


@pytest.mark.parametrize(
    "sig,expected_rc",
    [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, None)],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_ends_the_trial_as_failed(
    bso_server: LiveServer, tmp_path: Path, sig: int, expected_rc: int | None
) -> None:
    process, job_id = _launch(bso_server, "sleep", tmp_path)
    assert _status(bso_server, job_id) == "running"
    process.send_signal(sig)
    process.communicate(timeout=60)
    rc = process.returncode
    assert rc != 0 if expected_rc is None else rc == expected_rc
    assert _status(bso_server, job_id) == "failed"


def test_an_earlier_signal_handler_still_runs(bso_server: LiveServer, tmp_path: Path) -> None:
    process, job_id = _launch(bso_server, "chained", tmp_path)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 7 and "previous handler ran" in out
    assert _status(bso_server, job_id) == "failed"


@pytest.mark.parametrize("mode", ["raise", "raise_after_close"])
def test_an_uncaught_exception_ends_the_trial_and_is_still_printed(
    bso_server: LiveServer, tmp_path: Path, mode: str
) -> None:
    process, job_id = _launch(bso_server, mode, tmp_path)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "RuntimeError: boom in training" in err
    assert _status(bso_server, job_id) == "failed"


def test_exiting_mid_trial_ends_it_but_a_finished_trial_is_left_alone(
    bso_server: LiveServer, tmp_path: Path
) -> None:
    unfinished, unfinished_id = _launch(bso_server, "exit", tmp_path)
    finished, finished_id = _launch(bso_server, "converge", tmp_path)
    for process in (unfinished, finished):
        process.communicate(timeout=60)
        assert process.returncode == 0
    assert _status(bso_server, unfinished_id) == "failed"
    assert _status(bso_server, finished_id) == "succeeded"
