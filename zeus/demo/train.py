"""The training job of `zeus demo`: a small CNN on scikit-learn's 8x8 digits, trained for real.

Launched by `ZeusMaster` once per recurrence (``python -m zeus.demo.train --batch-size {bs} ...``).
`ZeusDataLoader` reads the ``ZEUS_*`` variables the master sets: it profiles power limits just in time
(`GlobalPowerLimitOptimizer` on the GPUs of ``ZEUS_GPU``, a replay GPU on machines without one),
stops at the target test accuracy or before crossing the cost threshold, and writes the run's result
where the master reads it. The model trains on the CPU unless CUDA is available.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import sys
from pathlib import Path
from typing import Any


def load_digits_data() -> tuple[Any, Any]:
    """scikit-learn's digits (1797 8x8 images) read from its bundled CSV, without importing sklearn
    (whose import costs seconds per run): (images in [0, 1] shaped N x 1 x 8 x 8, labels)."""
    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "zeus demo needs scikit-learn for its digits data: pip install scikit-learn"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    path = package_dir / "datasets" / "data" / "digits.csv.gz"
    data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return data[:, :-1].reshape(-1, 1, 8, 8) / 16.0, data[:, -1].astype(np.int64)


def adam_step(params: list[Any], state: dict[str, Any], lr: float) -> None:
    """One Adam update, written out: ``torch.optim`` would import torch._dynamo (~4 s per run)."""
    import torch

    beta1, beta2, eps = 0.9, 0.999, 1e-8
    state["t"] = t = state.get("t", 0) + 1
    with torch.no_grad():
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            m = state.setdefault(f"m{i}", torch.zeros_like(p))
            v = state.setdefault(f"v{i}", torch.zeros_like(p))
            m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            step = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            p.addcdiv_(m, v.sqrt().add_(eps), value=-step)
            p.grad = None


def augment(x: Any, y: Any, copies: int, seed: int) -> tuple[Any, Any]:
    """The images plus ``copies - 1`` copies shifted by up to one pixel (a longer, harder epoch)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    xs, ys = [x], [y]
    for _ in range(copies - 1):
        dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=gen))
        xs.append(torch.roll(x, shifts=(dy, dx), dims=(2, 3)))
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="zeus demo training job (digits CNN)")
    parser.add_argument("--batch-size", type=int, help="required unless --server decides it")
    parser.add_argument("--lr", type=float, help="learning rate at --batch-size")
    parser.add_argument("--epochs", type=int, required=True, help="max epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--copies", type=int, default=3, help="shifted copies of each image per epoch"
    )
    server = parser.add_argument_group("batch size from a BSO server (zeus serve)")
    server.add_argument("--server", help="BSO server URL; the server picks the batch size")
    server.add_argument("--bso-job-id", help="the recurring job's id on the server")
    server.add_argument("--batch-sizes", help="candidates, comma-separated")
    server.add_argument("--default-batch-size", type=int)
    server.add_argument("--default-lr", type=float, help="learning rate at --default-batch-size")
    server.add_argument("--target-metric", type=float)
    server.add_argument("--eta-knob", type=float, default=0.5)
    server.add_argument("--beta-knob", type=float, default=2.0)
    args = parser.parse_args(argv)
    needed = (
        ["bso_job_id", "batch_sizes", "default_batch_size", "default_lr", "target_metric"]
        if args.server
        else ["batch_size", "lr"]
    )
    missing = [name for name in needed if getattr(args, name) is None]
    if missing:
        parser.error("missing " + ", ".join("--" + m.replace("_", "-") for m in missing))
    return args


def connect_bso(args: argparse.Namespace, monitor: Any) -> Any:
    """Ask the BSO server for this launch's batch size; sets ``args.batch_size`` and ``args.lr``."""
    from zeus.optimizer.batch_size import BatchSizeOptimizer, JobSpec
    from zeus.policy.lr_scaling import scale_lr

    spec = JobSpec(
        job_id_prefix="zeus-demo",
        job_id=args.bso_job_id,
        batch_sizes=tuple(int(b) for b in args.batch_sizes.split(",")),
        default_batch_size=args.default_batch_size,
        eta_knob=args.eta_knob,
        beta_knob=args.beta_knob,
        target_metric=args.target_metric,
        max_epochs=args.epochs,
        mab_seed=args.seed,
    )
    bso = BatchSizeOptimizer(monitor, args.server, spec)
    args.batch_size = bso.get_batch_size()
    args.lr = scale_lr(args.default_lr, args.default_batch_size, args.batch_size, optimizer="adam")
    print(f"BSO server chose batch size {args.batch_size} (lr {args.lr:.4g})", flush=True)
    return bso


def write_early_stop_result(train_loader: Any, monitor: Any, eta_knob: float) -> None:
    """The server stopped the run before the target: the result `ZeusMaster` reads, reached=False.

    (`ZeusDataLoader` writes results only for runs that stop by its own rules.)"""
    import json

    from zeus.cost import CostModel

    config = train_loader.config
    history = train_loader.history
    energy_j, time_s = sum(r.energy_j for r in history), sum(r.time_s for r in history)
    cost_model = CostModel(eta_knob, float(sum(gpu.max_power_limit_w for gpu in monitor.gpus)))
    engine = train_loader.power_limit_optimizer
    result = {
        "job_id": config.job_id,
        "batch_size": train_loader.batch_size,
        "power_limit_w": None if engine is None else engine.chosen_power_limit_w,
        "epochs": len(history),
        "energy_j": energy_j,
        "time_s": time_s,
        "reached": False,
        "final_metric": history[-1].metric if history else None,
        "cost": cost_model.cost(energy_j, time_s),
        "eta_knob": cost_model.eta_knob,
        "max_power_w": cost_model.max_power_w,
        "stop_reason": "bso_server",
    }
    if config.result_path is not None:
        config.result_path.write_text(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from zeus.monitor import ZeusMonitor
    from zeus.run import ZeusDataLoader

    torch.set_num_threads(1)  # tiny model: threads only add overhead on a small machine
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images, labels = load_digits_data()
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:1500], order[1500:]
    x_train, y_train = augment(x[train], y[train], args.copies, seed=args.seed)

    monitor = ZeusMonitor()  # one monitor for the loader and the BSO client: one clock per GPU
    bso = connect_bso(args, monitor) if args.server else None
    train_loader = ZeusDataLoader(
        TensorDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=True,
        max_epochs=args.epochs,
        monitor=monitor,
    )
    eval_loader = ZeusDataLoader(TensorDataset(x[test], y[test]), batch_size=512)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 64, 10),
    ).to(device)
    params = list(model.parameters())
    adam_state: dict[str, Any] = {}

    epochs = train_loader.epochs()
    if bso is not None:
        bso.on_train_begin()
    for epoch in epochs:
        model.train()
        for xb, yb in train_loader:
            loss = nn.functional.cross_entropy(model(xb.to(device)), yb.to(device))
            loss.backward()  # type: ignore[no-untyped-call]
            adam_step(params, adam_state, args.lr)
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in eval_loader:
                correct += int((model(xb.to(device)).argmax(1) == yb.to(device)).sum())
        accuracy = correct / len(test)
        print(f"epoch {epoch}: test accuracy {accuracy:.3f}", flush=True)
        train_loader.report_metric(accuracy, higher_is_better=True)
        if bso is not None and not report_to_server(bso, accuracy):
            getattr(epochs, "close", lambda: None)()  # ends the epoch window; no loader result
            write_early_stop_result(train_loader, monitor, args.eta_knob)
            break
    if bso is not None:
        bso.on_train_end()
        bso.close()
    return 0


def report_to_server(bso: Any, accuracy: float) -> bool:
    """Report the epoch; False when the server stopped the trial without convergence."""
    from zeus.optimizer.batch_size.client import ZeusBSOEarlyStop

    try:
        bso.on_evaluate(accuracy)
    except ZeusBSOEarlyStop as e:
        print(f"BSO server stopped this run: {e}", flush=True)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
