"""One recurrence of a recurring job, as the observability test runs it: the batch size from the BSO
server, the power limit from just-in-time profiling, GPUs through the node agent, windows to
Prometheus. Softmax regression on scikit-learn's digits, trained for real with numpy (no torch: a
recurrence starts in about a second).

    ZEUS_GPU=agent:<socket> ZEUS_JOB_ID=digits-nightly ZEUS_METRICS=push:<gateway> \\
        python recurrence.py --server-url http://127.0.0.1:8000

Prints one JSON line when trained (trial, batch size, chosen limit, energy), then waits for a line
on stdin before it exits (so that Prometheus sees the chosen limit while the job holds it).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from zeus.demo.train import load_digits_data
from zeus.monitor import ZeusMonitor
from zeus.optimizer.batch_size import BatchSizeOptimizer, JobSpec, ZeusBSOEarlyStop
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server-url", required=True)
    parser.add_argument("--max-epochs", type=int, default=6)
    args = parser.parse_args()

    images, labels = load_digits_data()
    x = images.reshape(len(images), -1)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]

    monitor = ZeusMonitor(gpu_indices=[0], cpus=[], sync_execution_with="none")
    spec = JobSpec(
        job_id_prefix="digits",
        batch_sizes=(32, 64, 128),
        default_batch_size=128,  # not the cheapest here: the optimizer finds 64
        target_metric=0.85,
        max_epochs=args.max_epochs,
        mab_seed=1,
    )
    bso = BatchSizeOptimizer(monitor, args.server_url, spec)
    batch_size = bso.get_batch_size()
    plo = GlobalPowerLimitOptimizer(  # 300, 200 and 100 W, 3 steps each: within one epoch
        monitor, wait_steps=0, warmup_steps=0, profile_steps=3, pl_step=100, batch_size=batch_size
    )
    weights = np.zeros((x.shape[1], 10))
    rng = np.random.default_rng(bso.trial_number)

    plo.on_train_begin()
    bso.on_train_begin()
    for _ in range(args.max_epochs):
        plo.on_epoch_begin()
        shuffled = rng.permutation(train)
        for start in range(0, len(train), batch_size):
            batch = shuffled[start : start + batch_size]
            plo.on_step_begin()
            logits = x[batch] @ weights
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(batch)), labels[batch]] -= 1.0
            weights -= 0.5 * x[batch].T @ p / len(batch)
            plo.on_step_end()  # marks the step (a replay GPU's clock moves)
        plo.on_epoch_end()
        monitor.step(len(test), forward_only=True)  # the evaluation pass
        accuracy = float(((x[test] @ weights).argmax(axis=1) == labels[test]).mean())
        try:
            bso.on_evaluate(accuracy)
        except ZeusBSOEarlyStop:
            break
        if bso.training_finished:
            break
    bso.close()
    print(
        json.dumps(
            {
                "trial_number": bso.trial_number,
                "batch_size": batch_size,
                "converged": bso.converged,
                "power_limit_w": plo.chosen_power_limit_w,
                "energy_j": bso.state_dict()["energy_j"],
                "last_step_batch_size": len(test),  # the evaluation pass: what power_w() replays
            }
        ),
        flush=True,
    )
    sys.stdin.readline()  # "the rest of training", at the chosen limit
    plo.on_train_end()  # puts the original limit back


if __name__ == "__main__":
    main()
