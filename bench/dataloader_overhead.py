"""Per-batch overhead of `ZeusDataLoader` over a plain torch `DataLoader` (no model: loader only).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/dataloader_overhead.py [--batches 20000]``

Cases, each iterating the same in-memory dataset (batch size 8) for 10 epochs:
1. plain ``DataLoader``;
2. ``ZeusDataLoader`` without a GPU (``ZEUS_GPU=none``): epoch bookkeeping only;
3. ``ZeusDataLoader`` on a replay A40, observe only: plus one monitor window per epoch (the replay
   GPU at its maximum limit adds no slowdown);
4. ``ZeusDataLoader`` on a replay A40 with the power-limit engine, which reuses a saved profile
   (where 300 W, the maximum, is best) and so starts "done": plus the engine's step hooks.
Cases run round-robin, 5 rounds; the best round per case is kept. Prints microseconds per batch and
the ratio to the plain loader.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

from zeus.device.replay import ReplayGPU
from zeus.optimizer.power_limit import PowerLimitMeasurement
from zeus.optimizer.power_limit.profile_store import ProfileKey, save_profile
from zeus.run import ZeusDataLoader
from zeus.run.dataloader_config import PROFILE_JOB

EPOCHS = 10
BATCH = 8


def per_batch_us(loader: DataLoader) -> float:
    batches = 0
    start = time.perf_counter()
    if isinstance(loader, ZeusDataLoader):
        for _ in loader.epochs():
            for _batch in loader:
                batches += 1
            loader.report_metric(0.0)
    else:
        for _ in range(EPOCHS):
            for _batch in loader:
                batches += 1
    return (time.perf_counter() - start) / batches * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20000, help="batches per case")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n = args.batches // EPOCHS * BATCH
    dataset = TensorDataset(torch.randn(n, 16), torch.zeros(n, dtype=torch.long))

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZEUS_STATE_DIR"] = tmp
        gpu_model = ReplayGPU("a40-resnet50").name
        save_profile(
            tmp,
            ProfileKey(gpu_model, PROFILE_JOB, BATCH, 1),
            [PowerLimitMeasurement(w, 0.1 * 400 / w, 26.0 * 400 / w) for w in range(100, 301, 25)],
        )
        cases: dict[str, tuple[str, Callable[[], DataLoader]]] = {
            "plain DataLoader": ("none", lambda: DataLoader(dataset, batch_size=BATCH)),
            "ZeusDataLoader, no GPU": (
                "none",
                lambda: ZeusDataLoader(dataset, batch_size=BATCH, max_epochs=EPOCHS),
            ),
            "ZeusDataLoader, replay, observe only": (
                "replay:a40-resnet50",
                lambda: ZeusDataLoader(
                    dataset, batch_size=BATCH, max_epochs=EPOCHS, use_optimal_pl=False
                ),
            ),
            "ZeusDataLoader, replay, engine done": (
                "replay:a40-resnet50",
                lambda: ZeusDataLoader(dataset, batch_size=BATCH, max_epochs=EPOCHS, log_dir=tmp),
            ),
        }
        best = dict.fromkeys(cases, float("inf"))
        for _ in range(5):
            for name, (backend, make) in cases.items():
                os.environ["ZEUS_GPU"] = backend
                loader = make()
                best[name] = min(best[name], per_batch_us(loader))
                if name.endswith("engine done"):
                    engine = loader.power_limit_optimizer  # type: ignore[attr-defined]
                    assert engine is not None and engine.chosen_power_limit_w == 300
    base = best["plain DataLoader"]
    print(f"{'case':<40} {'us/batch':>10} {'ratio':>7}")
    for name, us in best.items():
        print(f"{name:<40} {us:>10.1f} {us / base:>7.2f}")


if __name__ == "__main__":
    main()
