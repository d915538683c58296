"""One data-parallel launch (= one trial) of a recurring MNIST-style job, under torch.distributed.

    ZEUS_JOB_ID=mnist-dp ZEUS_GPU=replay:a40-resnet50:2 \
        torchrun --nproc-per-node 2 train_dp.py --server-url http://127.0.0.1:8000

Rank 0 asks the server for the batch size (per rank) and broadcasts it with the trial number; every
rank monitors its own GPU and ``on_evaluate`` sums their energy, reports from rank 0 and hands every
rank the same decision. Backend: nccl on GPUs, gloo on CPU. Exit status as ``train_single_gpu.py``.
Under a Kubeflow PyTorchJob the operator sets MASTER_ADDR, WORLD_SIZE and RANK; run it with python.
"""

from __future__ import annotations

import logging
import os
import sys

import torch
import torch.distributed as dist
from common import (
    SmallCNN,
    correct_and_total,
    job_spec,
    load_datasets,
    make_monitor,
    make_optimizer,
    parse_args,
    train_epoch,
)
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from zeus.optimizer.batch_size import BatchSizeOptimizer, ZeusBSOEarlyStop, broadcast_batch_size

logger = logging.getLogger("mnist")
EXIT_EARLY_STOP = 3


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank()

    bso = BatchSizeOptimizer(make_monitor(local_rank), args.server_url, job_spec(args), rank=rank)
    batch_size = broadcast_batch_size(bso)
    torch.manual_seed(args.seed * 1000 + (bso.trial_number or 0))

    train_set, val_set = load_datasets(args.data_dir)
    sampler = DistributedSampler(train_set, shuffle=True, seed=args.seed)
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler)
    val_loader = DataLoader(
        val_set, batch_size=256, sampler=DistributedSampler(val_set, shuffle=False)
    )
    model = SmallCNN().to(device)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    opt = make_optimizer(ddp, args, batch_size)

    bso.on_train_begin()
    try:
        for epoch in range(1, args.max_epochs + 1):
            sampler.set_epoch(epoch)
            train_epoch(ddp, train_loader, opt, device, bso.monitor)
            counts = torch.tensor(
                correct_and_total(model, val_loader, device, bso.monitor), device=device
            )
            dist.all_reduce(counts)
            accuracy = float(counts[0]) / float(counts[1])
            if rank == 0:
                logger.info("epoch %d: validation accuracy %.4f", epoch, accuracy)
            bso.on_evaluate(accuracy)  # a collective: every rank calls it
            if bso.training_finished:
                break
    except ZeusBSOEarlyStop as e:
        if rank == 0:
            logger.warning("%s", e)
        return EXIT_EARLY_STOP
    finally:
        bso.on_train_end()
        bso.close()
        dist.destroy_process_group()
    if rank == 0:
        logger.info("trial %d done with batch size %d per rank", bso.trial_number, batch_size)
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(main())
