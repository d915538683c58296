"""One launch (= one trial) of a recurring MNIST-style job whose batch size the BSO server picks.

    ZEUS_JOB_ID=mnist-nightly ZEUS_GPU=replay:a40-resnet50 \
        python train_single_gpu.py --server-url http://127.0.0.1:8000

Exit status: 0 when the target accuracy was reached; 3 when the server stopped the trial early
(relaunch: the next trial tries another batch size); 1 on other errors.
"""

from __future__ import annotations

import logging
import sys

import torch
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
from torch.utils.data import DataLoader

from zeus.optimizer.batch_size import BatchSizeOptimizer, ZeusBSOEarlyStop

logger = logging.getLogger("mnist")
EXIT_EARLY_STOP = 3


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    bso = BatchSizeOptimizer(make_monitor(0), args.server_url, job_spec(args))
    batch_size = bso.get_batch_size()
    torch.manual_seed(args.seed * 1000 + (bso.trial_number or 0))

    train_set, val_set = load_datasets(args.data_dir)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=256)
    model = SmallCNN().to(device)
    opt = make_optimizer(model, args, batch_size)

    bso.on_train_begin()
    try:
        for epoch in range(1, args.max_epochs + 1):
            train_epoch(model, train_loader, opt, device, bso.monitor)
            correct, total = correct_and_total(model, val_loader, device, bso.monitor)
            logger.info("epoch %d: validation accuracy %.4f", epoch, correct / total)
            bso.on_evaluate(correct / total)
            if bso.training_finished:
                break
    except ZeusBSOEarlyStop as e:
        logger.warning("%s", e)
        return EXIT_EARLY_STOP
    finally:
        bso.on_train_end()
        bso.close()
    logger.info("trial %d done with batch size %d", bso.trial_number, batch_size)
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(main())
