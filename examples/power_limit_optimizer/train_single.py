"""Train a small classifier on scikit-learn's digits while Zeus picks the GPU power limit.

`GlobalPowerLimitOptimizer` profiles power limits just in time during the first epoch(s), applies
the one with the lowest energy–time cost, and restores the original limit at the end.

    python train_single.py --gpu 0      # a real NVIDIA GPU
    python train_single.py --quick      # no GPU: the replay GPU a40-imagenet-resnet50

Like every example, it uses ``ZEUS_GPU`` when set, NVIDIA or AMD GPUs when NVML or AMD SMI finds
some, else a replay GPU, and says which. It prints the chosen limit and the energy per step it saves
against the maximum limit, both taken from the profiling measurements.
"""

from __future__ import annotations

import argparse
import logging
import os

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zeus.device import backend_or_replay, gpu_backend
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer, ProfileReport, ZeusCost

REPLAY_PROFILE = "a40-imagenet-resnet50"
"""Replayed without a GPU: ResNet-50 on ImageNet measured on an A40 at the batch size in use."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", type=int, default=0, help="GPU index (as this process sees it)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--eta-knob", type=float, default=0.5, help="0 = time only, 1 = energy only"
    )
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--profile-steps", type=int, default=40)
    parser.add_argument(
        "--quick", action="store_true", help="few steps per limit, stop after profiling"
    )
    args = parser.parse_args()
    if args.quick:
        args.warmup_steps, args.profile_steps, args.epochs = 3, 10, 5
    return args


def digits_loaders(batch_size: int) -> tuple[DataLoader, DataLoader]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=generator)
    train, test = order[:1500], order[1500:]
    train_set, test_set = TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test])
    return (
        DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator),
        DataLoader(test_set, batch_size=256),
    )


def accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
    model.train()
    return correct / len(loader.dataset)


def print_savings(plo: GlobalPowerLimitOptimizer, monitor: ZeusMonitor) -> None:
    """The chosen limit and its energy per step against the maximum limit, as measured."""
    print(ProfileReport.of(plo).format())
    if any(gpu.capabilities.simulated for gpu in monitor.gpus):
        print(f"(replay GPU {gpu_backend()}: figures simulated from a profile)")


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ["ZEUS_GPU"] = backend = backend_or_replay(REPLAY_PROFILE)
    print(f"GPU backend: {backend}", flush=True)
    torch.manual_seed(0)
    device = torch.device(f"cuda:{args.gpu}" if torch.cuda.is_available() else "cpu")
    monitor = ZeusMonitor(gpu_indices=[args.gpu])
    plo = GlobalPowerLimitOptimizer(
        monitor,
        optimum_selector=ZeusCost(args.eta_knob),
        wait_steps=10,
        warmup_steps=args.warmup_steps,
        profile_steps=args.profile_steps,
        batch_size=args.batch_size,  # replay GPUs time each step at this batch size
    )
    train_loader, test_loader = digits_loaders(args.batch_size)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    plo.on_train_begin()
    try:
        for epoch in range(args.epochs):
            plo.on_epoch_begin()
            for x, y in train_loader:
                plo.on_step_begin()
                optimizer.zero_grad()
                loss_fn(model(x.to(device)), y.to(device)).backward()
                optimizer.step()
                plo.on_step_end()
            plo.on_epoch_end()
            print(f"epoch {epoch}: test accuracy {accuracy(model, test_loader, device):.3f}")
            if args.quick and plo.state == "done":
                break
    finally:
        plo.on_train_end()
    if plo.chosen_power_limit_w is None:
        print("profiling did not finish: train longer or lower --warmup-steps/--profile-steps")
        return
    print_savings(plo, monitor)


if __name__ == "__main__":
    main()
