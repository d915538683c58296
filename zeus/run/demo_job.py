"""The training job of `zeus demo`: a small CNN on scikit-learn's 8x8 digits, trained for real.

Launched by `ZeusMaster` once per recurrence (``python -m zeus.run.demo_job --batch-size {bs} ...``).
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


def warm_up(model: Any, batch: Any) -> None:
    """A few untimed passes so that power-limit profiling measures steady-state steps."""
    for _ in range(3):
        model(batch).sum().backward()
    model.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="zeus demo training job (digits MLP)")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True, help="max epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--copies", type=int, default=3, help="shifted copies of each image per epoch"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from zeus.run import ZeusDataLoader

    torch.set_num_threads(1)  # tiny model: threads only add overhead on a small machine
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images, labels = load_digits_data()
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:1500], order[1500:]

    x_train, y_train = augment(x[train], y[train], args.copies, seed=args.seed)
    train_loader = ZeusDataLoader(
        TensorDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=True,
        max_epochs=args.epochs,
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
    warm_up(model, x_train[: args.batch_size])
    params = list(model.parameters())
    adam_state: dict[str, Any] = {}

    for epoch in train_loader.epochs():
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
