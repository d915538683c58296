"""Data, model and loops shared by the MNIST-style BSO examples.

Without ``--data-dir`` the examples train on scikit-learn's handwritten digits (1,797 8x8 images,
bundled with scikit-learn, no download); with it, on the MNIST IDX files in that directory
(``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``).
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from zeus.monitor import ZeusMonitor
from zeus.optimizer.batch_size import JobSpec
from zeus.policy.lr_scaling import scale_lr

logger = logging.getLogger("mnist")

DEFAULT_BATCH_SIZES = (16, 32, 64, 128)


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--server-url",
        default=os.environ.get("ZEUS_BSO_SERVER_URL", "http://127.0.0.1:8000"),
        help="BSO server (default: env ZEUS_BSO_SERVER_URL or http://127.0.0.1:8000)",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="MNIST IDX files (default: digits)")
    p.add_argument("--job-id-prefix", default="mnist", help="ZEUS_JOB_ID must start with it")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(DEFAULT_BATCH_SIZES))
    p.add_argument("--default-batch-size", type=int, default=32)
    p.add_argument(
        "--lr", type=float, default=1e-3, help="Adam learning rate at the default batch size"
    )
    p.add_argument("--target-metric", type=float, default=0.9, help="validation accuracy to reach")
    p.add_argument("--max-epochs", type=int, default=15)
    p.add_argument("--eta-knob", type=float, default=0.5)
    p.add_argument("--beta-knob", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def job_spec(args: argparse.Namespace) -> JobSpec:
    """The recurring job's spec; its id comes from env ZEUS_JOB_ID."""
    return JobSpec(
        job_id_prefix=args.job_id_prefix,
        batch_sizes=tuple(args.batch_sizes),
        default_batch_size=args.default_batch_size,
        target_metric=args.target_metric,
        max_epochs=args.max_epochs,
        eta_knob=args.eta_knob,
        beta_knob=args.beta_knob,
        mab_seed=args.seed,
    )


def make_monitor(local_rank: int) -> ZeusMonitor:
    """Monitor this rank's GPU: a real one, or the replay GPU of ``ZEUS_GPU=replay:<profile>[:n]``."""
    return ZeusMonitor(gpu_indices=[local_rank])


def load_datasets(data_dir: Path | None) -> tuple[Dataset[tuple[torch.Tensor, ...]], ...]:
    """(train, validation) as tensors of shape (N, 1, H, W) scaled to [0, 1]."""
    if data_dir is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype(np.float32) / 16.0
        labels = digits.target.astype(np.int64)
        order = np.random.default_rng(0).permutation(len(labels))
        images, labels = images[order], labels[order]
        cut = int(0.8 * len(labels))
        return _tensors(images[:cut], labels[:cut]), _tensors(images[cut:], labels[cut:])
    return (
        _tensors(
            _idx(data_dir, "train-images-idx3-ubyte") / 255.0,
            _idx(data_dir, "train-labels-idx1-ubyte"),
        ),
        _tensors(
            _idx(data_dir, "t10k-images-idx3-ubyte") / 255.0,
            _idx(data_dir, "t10k-labels-idx1-ubyte"),
        ),
    )


def _tensors(images: np.ndarray, labels: np.ndarray) -> TensorDataset:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)
    return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


def _idx(data_dir: Path, stem: str) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic, dimensions, then unsigned bytes."""
    path = data_dir / stem
    opener = open if path.exists() else gzip.open
    path = path if path.exists() else data_dir / f"{stem}.gz"
    with opener(path, "rb") as f:
        _zero, _dtype, ndim = struct.unpack(">HBB", f.read(4))
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


class SmallCNN(nn.Module):
    """Two convolutions and a linear head; any input size (8x8 digits, 28x28 MNIST)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Linear(32 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_optimizer(
    model: nn.Module, args: argparse.Namespace, batch_size: int
) -> torch.optim.Optimizer:
    lr = scale_lr(args.lr, args.default_batch_size, batch_size, optimizer="adam")
    logger.info("batch size %d, learning rate %.2e", batch_size, lr)
    return torch.optim.Adam(model.parameters(), lr=lr)


def train_epoch(
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, ...]],
    opt: torch.optim.Optimizer,
    device: torch.device,
    monitor: ZeusMonitor,
) -> None:
    model.train()
    for x, y in loader:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
        loss.backward()
        opt.step()
        monitor.step(len(x))  # replay GPUs time the step; a no-op on real GPUs


@torch.no_grad()
def correct_and_total(
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, ...]],
    device: torch.device,
    monitor: ZeusMonitor,
) -> tuple[int, int]:
    model.eval()
    correct = total = 0
    for x, y in loader:
        pred = model(x.to(device)).argmax(dim=1)
        correct += int((pred == y.to(device)).sum())
        total += len(y)
        monitor.step(len(x), forward_only=True)
    return correct, total
