"""Drive `train.py` as a recurring job with `ZeusMaster`: batch sizes from Zeus's bandit.

Each recurrence launches ``train.py`` with the batch size and (square-root scaled) learning rate
Zeus's default batch-size policy (``local-search-ts``) picks; ``ZeusDataLoader`` inside it profiles
power limits just in time and writes the result the master reads back. The history lives in
``--out`` (default ``zeus-runs/zeus_dataloader``): run this again to resume an interrupted series.

    python examples/zeus_dataloader/run_zeus.py --quick                  # 2 recurrences
    python examples/zeus_dataloader/run_zeus.py --recurrences 12 --out runs/digits

Like every example, it uses ``ZEUS_GPU`` when set, NVIDIA or AMD GPUs when NVML or AMD SMI finds
some, else a replay GPU (``a40-imagenet-resnet50``), and says which: a replay GPU's energy and time
figures are replayed from measurements on a real A40, on virtual time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zeus.device import backend_or_replay
from zeus.errors import ZeusError
from zeus.job import Job
from zeus.policy import LocalSearchTSBatchSizeOptimizer
from zeus.run import ZeusMaster

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 short recurrences (target accuracy 0.5)"
    )
    parser.add_argument("--recurrences", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("zeus-runs/zeus_dataloader"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    command = [sys.executable, "train.py", "--batch-size", "{bs}", "--lr", "{lr}"]
    command += ["--epochs", "{epochs}", "--target-metric", "{target_metric}"]
    job = Job(
        dataset="digits",
        network="small-cnn",
        optimizer="adam",
        target_metric=0.5 if args.quick else 0.9,  # quick: one or two epochs per run
        max_epochs=3 if args.quick else 10,
        default_bs=64,
        default_lr=1e-3,
        workdir=str(HERE),
        command=tuple(command),
    )
    backend = backend_or_replay("a40-imagenet-resnet50")
    env = {"ZEUS_GPU": backend}
    if backend.startswith("replay:"):
        print(f"GPU backend: {backend}: the jobs run on a replay GPU (simulated figures).")
    master = ZeusMaster(
        LocalSearchTSBatchSizeOptimizer(seed=args.seed),
        args.out,
        profile_params=(1, 2) if args.quick else (2, 8),
        seed=args.seed,
        env=env,
    )
    state = master.run(job, [32, 64, 128], 2 if args.quick else args.recurrences)
    print("rec  try  batch  lr        limit  epochs  energy (J)  time (s)  result")
    for r in state.runs:
        print(
            f"{r.recurrence:3d}  {r.try_number:3d}  {r.batch_size:5d}  {r.learning_rate or 0:.2e}  "
            f"{r.power_limit_w or '-':>5}  {r.epochs or 0:6d}  {r.energy_j or 0:10.1f}  "
            f"{r.time_s or 0:8.2f}  {r.status}"
        )
    print(f"history: {args.out / 'series.json'}; logs: {args.out / 'logs'}")


if __name__ == "__main__":
    try:
        main()
    except ZeusError as e:
        sys.exit(f"error: {e}")
