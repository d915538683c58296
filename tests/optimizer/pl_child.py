"""A training process for restore tests: profiles on a replay GPU, then trains until told otherwise.

    python pl_child.py <mode> <marker-file>

Prints ``READY <limit>`` once the chosen limit is applied. Modes: ``forever`` (train until a signal
arrives), ``raise`` (raise an exception without calling on_train_end), ``own-handler`` (like
forever, with a SIGTERM handler of its own installed first that writes the marker file and exits),
``unconfigured-logging`` (like forever, without configuring logging).
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import Energy, GlobalPowerLimitOptimizer


def main() -> None:
    mode, marker = sys.argv[1], Path(sys.argv[2])
    if mode != "unconfigured-logging":  # that mode: like a script that never configures logging
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    if mode == "own-handler":

        def handler(signum: int, frame: FrameType | None) -> None:
            marker.write_text("own handler ran")
            sys.exit(3)

        signal.signal(signal.SIGTERM, handler)
    monitor = ZeusMonitor(cpus=[], sync_execution_with=lambda: None)  # GPUs from ZEUS_GPU
    plo = GlobalPowerLimitOptimizer(monitor, Energy(), warmup_steps=1, profile_steps=2)
    plo.on_train_begin()
    announced = False
    while True:
        plo.on_epoch_begin()
        for _ in range(20):
            plo.on_step_begin()
            time.sleep(0.002)
            plo.on_step_end()
            if plo.state == "done" and not announced:
                announced = True
                print("READY", plo.chosen_power_limit_w, flush=True)
                if mode == "raise":
                    raise RuntimeError("training crashed")
        plo.on_epoch_end()


if __name__ == "__main__":
    main()
