"""Data-parallel training (DistributedDataParallel) on scikit-learn's digits with one power limit.

Every rank runs `GlobalPowerLimitOptimizer` on its own GPU; the ranks sum their measurements, make
one decision, and apply it to every GPU of the job.

    python train_dp.py --nproc 2            # real GPUs 0 and 1 (NCCL)
    python train_dp.py --nproc 2 --quick    # no GPU: two replay GPUs (gloo)

Also works under ``torchrun --nproc-per-node 2 train_dp.py`` (then --nproc is ignored).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from zeus.device import backend_or_replay, gpu_backend
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer, ProfileReport, ZeusCost

REPLAY_PROFILE = "a40-imagenet-resnet50"
"""Replayed without a GPU: ResNet-50 on ImageNet measured on an A40 at the batch size in use."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes (one GPU each)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16, help="per rank")
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


def print_savings(plo: GlobalPowerLimitOptimizer, world_size: int) -> None:
    """The chosen limit and the job's energy per step against the maximum limit, as measured."""
    print(f"measurements summed over {world_size} GPUs:")
    print(ProfileReport.of(plo).format())
    if gpu_backend().startswith("replay:"):
        print(f"(replay GPUs {gpu_backend()}: figures simulated from a profile)")


def train(rank: int, world_size: int, args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.INFO, format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s"
    )
    local_rank = int(os.environ.get("LOCAL_RANK", rank))  # this machine's GPU for this rank
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world_size)
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    torch.manual_seed(0)

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    dataset = TensorDataset(x, torch.tensor(digits.target))
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    model = DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    monitor = ZeusMonitor(gpu_indices=[local_rank])
    plo = GlobalPowerLimitOptimizer(
        monitor,
        optimum_selector=ZeusCost(args.eta_knob),
        wait_steps=10,
        warmup_steps=args.warmup_steps,
        profile_steps=args.profile_steps,
        batch_size=args.batch_size * world_size,  # the job's batch: replay GPUs time each rank's
    )
    plo.on_train_begin()
    try:
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            plo.on_epoch_begin()
            for xb, yb in loader:
                plo.on_step_begin()
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(xb.to(device)), yb.to(device)).backward()
                optimizer.step()
                plo.on_step_end()
            plo.on_epoch_end()
            if rank == 0:
                print(f"epoch {epoch} done, optimizer state {plo.state}", flush=True)
            if args.quick and plo.state == "done":
                break
    finally:
        plo.on_train_end()
    if rank == 0:
        if plo.chosen_power_limit_w is None:
            print("profiling did not finish: train longer or lower --warmup-steps/--profile-steps")
        else:
            print_savings(plo, world_size)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    args = parse_args()
    # Exported before the ranks start, so that every rank uses the same GPUs.
    os.environ["ZEUS_GPU"] = backend = backend_or_replay(REPLAY_PROFILE, count=args.nproc)
    print(f"GPU backend: {backend}", flush=True)
    if "RANK" in os.environ:  # launched by torchrun
        train(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args)
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    mp.spawn(train, args=(args.nproc, args), nprocs=args.nproc, join=True)


if __name__ == "__main__":
    main()
