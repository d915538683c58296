"""End to end: the MNIST-style BSO examples, launched several times as one recurring job each,
against a live `zeus serve`; single process and data parallel (gloo, torchrun), on the replay GPU."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/batch_size_optimizer/mnist"
BIN = Path(sys.executable).parent
EXIT_EARLY_STOP = 3
FAST = ["--target-metric", "0.8", "--max-epochs", "8"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("bso")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "zeus"),
            "serve",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{tmp}/bso.db",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "zeus serve failed"
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        log.close()


def _launch(args: list[str], job_id: str, gpu: str) -> int:
    env = dict(os.environ, ZEUS_JOB_ID=job_id, ZEUS_GPU=gpu)
    result = subprocess.run(args, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, EXIT_EARLY_STOP), result.stderr[-3000:]
    return result.returncode


def _job(url: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/jobs/{job_id}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _check_recurrences(job: dict[str, Any], exit_codes: list[int], expected_bs: list[int]) -> None:
    trials = job["trials"]
    assert [t["trial_number"] for t in trials] == list(range(1, len(exit_codes) + 1))
    assert [t["batch_size"] for t in trials] == expected_bs
    for trial, code in zip(trials, exit_codes, strict=True):
        assert trial["status"] != "running" and trial["energy"] > 0 and trial["time"] > 0
        assert trial["converged"] is (code == 0)  # exit 3 exactly when stopped unconverged


@pytest.mark.slow
def test_single_gpu_launches_follow_the_pruning_order(server_url: str) -> None:
    script = [sys.executable, "train_single_gpu.py", "--server-url", server_url, *FAST]
    codes = [_launch(script, "mnist-single-e2e", "replay:a40-resnet50") for _ in range(3)]
    job = _job(server_url, "mnist-single-e2e")
    # pruning round 1 from the default 32: 32, then smaller (16, the smallest), then larger (64)
    _check_recurrences(job, codes, [32, 16, 64])
    assert job["spec"]["number_of_gpus"] == 1
    assert job["spec"]["gpu_model"].endswith("(replay)")


@pytest.mark.slow
def test_data_parallel_launches_share_trials_across_ranks(server_url: str) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    codes = []
    for _ in range(2):
        port = ["--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
        script = ["train_dp.py", "--server-url", server_url, *FAST]
        codes.append(_launch([*torchrun, *port, *script], "mnist-dp-e2e", "replay:a40-resnet50:2"))
    job = _job(server_url, "mnist-dp-e2e")
    _check_recurrences(job, codes, [32, 16])  # one trial per launch, not one per rank
    assert job["spec"]["number_of_gpus"] == 2
    from zeus.device import get_gpus

    max_limit_w = get_gpus(backend="replay:a40-resnet50")[0].max_power_limit_w
    assert job["spec"]["max_power"] == 2 * max_limit_w  # two replay A40s


def _write_idx(path: Path, array: Any, gz: bool) -> None:
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype("uint8").tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def test_mnist_idx_files_are_read(tmp_path: Path) -> None:
    """``--data-dir``: IDX files (plain or gzipped) load as (N, 1, H, W) images in [0, 1]."""
    import numpy as np

    sys.path.insert(0, str(EXAMPLE))
    try:
        from common import load_datasets
    finally:
        sys.path.remove(str(EXAMPLE))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 28, 28))
    labels = rng.integers(0, 10, size=12)
    _write_idx(tmp_path / "train-images-idx3-ubyte", images, gz=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels, gz=False)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:5], gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:5], gz=True)
    train, val = load_datasets(tmp_path)
    x, y = train.tensors  # type: ignore[attr-defined]
    assert tuple(x.shape) == (12, 1, 28, 28) and len(val) == 5
    assert np.allclose(x[3, 0].numpy(), images[3] / 255.0)
    assert y.tolist() == labels.tolist()
