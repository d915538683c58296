"""A small real training job for ZeusMaster tests: numpy logistic regression, no torch start-up.

Speaks the driver contract: reads the ZEUS_* variables, stops at the target metric, at --epochs, or
before an epoch that would cross ZEUS_COST_THRESH, and writes <ZEUS_LOG_DIR>/<ZEUS_JOB_ID>.result.json.
Energy is wall time times a fixed 200 W (this test job has no GPU). Test hooks: --crash-bs exits with
code 3 for that batch size; --sleep-s (or env TEST_SLEEP_S) sleeps per epoch (to interrupt it); env
TEST_WAIT_FOR makes every run but the first wait (at most 60 s) until that file exists; the
environment it saw is written to <job_id>.env.json.
"""

import argparse
import json
import math
import os
import signal
import sys
import time

import numpy as np

POWER_W = 200.0

parser = argparse.ArgumentParser()
parser.add_argument("--bs", type=int, required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--crash-bs", type=int, default=-1)
parser.add_argument("--sleep-s", type=float, default=float(os.environ.get("TEST_SLEEP_S", "0")))
args = parser.parse_args()

log_dir, job_id = os.environ["ZEUS_LOG_DIR"], os.environ["ZEUS_JOB_ID"]
with open(os.path.join(log_dir, f"{job_id}.env.json"), "w") as f:
    json.dump({k: v for k, v in os.environ.items() if k.startswith("ZEUS_")}, f)
target = float(os.environ["ZEUS_TARGET_METRIC"])
thresh = float(os.environ["ZEUS_COST_THRESH"])
eta = float(os.environ["ZEUS_ETA_KNOB"])


def on_term(signum, frame):
    print("job: got SIGTERM, cleaning up", flush=True)
    with open(os.path.join(log_dir, f"{job_id}.terminated"), "w") as f:
        f.write("yes")
    sys.exit(143)


signal.signal(signal.SIGTERM, on_term)
wait_for, deadline = os.environ.get("TEST_WAIT_FOR"), time.monotonic() + 60
while wait_for and not job_id.endswith("-0000") and not os.path.exists(wait_for):
    if time.monotonic() > deadline:
        sys.exit(f"job: {wait_for} never appeared")
    time.sleep(0.05)
print(f"job {job_id}: bs={args.bs} lr={args.lr} epochs={args.epochs}", flush=True)
if args.bs == args.crash_bs:
    raise RuntimeError(f"simulated out-of-memory at batch size {args.bs}")

rng = np.random.default_rng(args.seed)
x = rng.normal(size=(2000, 10))
w_true = rng.normal(size=10)
y = (x @ w_true + 0.5 * rng.normal(size=2000) > 0).astype(float)
w = np.zeros(10)
start = time.monotonic()
epochs, acc, reached = 0, 0.0, False
epoch_time_s = 0.0
while epochs < args.epochs:
    elapsed = time.monotonic() - start
    projected = (elapsed + epoch_time_s) * POWER_W  # eta*E + (1-eta)*P*T with E = P*T
    if epochs > 0 and projected > thresh:
        print("job: stopping before the cost threshold", flush=True)
        break
    t0 = time.monotonic()
    order = rng.permutation(len(y))
    for i in range(0, len(y), args.bs):
        idx = order[i : i + args.bs]
        p = 1 / (1 + np.exp(-(x[idx] @ w)))
        w -= args.lr * x[idx].T @ (p - y[idx]) / len(idx)
    time.sleep(args.sleep_s)
    epochs += 1
    acc = float(((x @ w > 0) == (y > 0)).mean())
    epoch_time_s = time.monotonic() - t0
    print(f"epoch {epochs}: accuracy {acc:.3f}", flush=True)
    if acc >= target:
        reached = True
        break
time_s = time.monotonic() - start
energy_j = POWER_W * time_s
result = {
    "job_id": job_id,
    "batch_size": args.bs,
    "power_limit_w": None,
    "epochs": epochs,
    "energy_j": energy_j,
    "time_s": time_s,
    "reached": reached,
    "final_metric": acc,
    "cost": eta * energy_j + (1 - eta) * POWER_W * time_s,
    "eta_knob": eta,
    "max_power_w": POWER_W,
}
assert math.isfinite(energy_j)
with open(os.path.join(log_dir, f"{job_id}.result.json"), "w") as f:
    json.dump(result, f)
