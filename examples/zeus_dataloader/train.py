"""Image classification with `ZeusDataLoader`: JIT power-limit profiling and early stopping built in.

Data: ``--data-dir`` in the CIFAR-100 layout (``train/<class>/*.png`` and ``test/<class>/*.png``);
without it, scikit-learn's 8x8 digits. Every setting comes from a flag, so `ZeusMaster` can fill a
template such as ``python train.py --batch-size {bs} --lr {lr} --epochs {epochs} --seed {seed}``;
the target metric, cost threshold, eta, log directory and job id then come from the ``ZEUS_*``
variables it sets.

    python train.py --quick      # no GPU: the replay GPU a40-imagenet-resnet50
    python train.py --data-dir ~/cifar100 --batch-size 128 --epochs 50 --target-metric 0.6

Like every example, it uses ``ZEUS_GPU`` when set, NVIDIA or AMD GPUs when NVML or AMD SMI finds
some, else a replay GPU, and says which.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from zeus.device import backend_or_replay, gpu_backend
from zeus.optimizer.power_limit import ProfileReport
from zeus.run import ZeusDataLoader

REPLAY_PROFILE = "a40-imagenet-resnet50"
"""Replayed without a GPU: ResNet-50 on ImageNet measured on an A40 at the batch size in use."""


class ImageFolder(Dataset[tuple[torch.Tensor, int]]):
    """``<root>/<class>/*.png`` as (C, H, W) float tensors in [0, 1]; classes in sorted order."""

    def __init__(self, root: Path) -> None:
        from PIL import Image

        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [
            (path, label)
            for label, name in enumerate(self.classes)
            for path in sorted((root / name).glob("*.png"))
        ]
        if not self.samples:
            raise SystemExit(f"no images under {root}/<class>/*.png")
        self._open = Image.open

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        with self._open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(pixels).permute(2, 0, 1), label


def load_datasets(data_dir: Path | None) -> tuple[Dataset, Dataset, int, int]:
    """(train, test, channels, classes)."""
    if data_dir is not None:
        train, test = ImageFolder(data_dir / "train"), ImageFolder(data_dir / "test")
        return train, test, 3, len(train.classes)
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:1500], order[1500:]
    return TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test]), 1, 10


def small_cnn(channels: int, classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64 * 16, classes),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=20, help="max epochs")
    parser.add_argument(
        "--target-metric", type=float, default=None, help="test accuracy to stop at"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the shuffling")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="few steps per power limit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ["ZEUS_GPU"] = backend = backend_or_replay(REPLAY_PROFILE)
    print(f"GPU backend: {backend}", flush=True)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    train_set, test_set, channels, classes = load_datasets(args.data_dir)
    train_loader = ZeusDataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        max_epochs=args.epochs,
        target_metric=args.target_metric,
        profile_params=(2, 4) if args.quick else None,
    )
    eval_loader = ZeusDataLoader(test_set, batch_size=256, num_workers=args.num_workers)
    model = small_cnn(channels, classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in train_loader.epochs():
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x.to(device)), y.to(device)).backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in eval_loader:
                correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
        accuracy = correct / len(test_set)
        print(f"epoch {epoch}: test accuracy {accuracy:.3f}", flush=True)
        train_loader.report_metric(accuracy, higher_is_better=True)

    print_summary(train_loader)


def print_summary(train_loader: ZeusDataLoader) -> None:
    history = train_loader.history
    energy_j, time_s = sum(r.energy_j for r in history), sum(r.time_s for r in history)
    print(f"trained {len(history)} epochs: {energy_j:.1f} J, {time_s:.1f} s")
    engine = train_loader.power_limit_optimizer
    if engine is None or engine.chosen_power_limit_w is None:
        print("no power limit chosen")
        return
    print(ProfileReport.of(engine).format())
    if gpu_backend().startswith("replay:"):
        print(f"(replay GPU {gpu_backend()}: figures simulated from a profile)")


if __name__ == "__main__":
    main()
