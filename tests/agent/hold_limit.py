"""A job that sets one GPU's power limit through the agent, says so, and waits to be killed.

python hold_limit.py <socket> <gpu index> <watts>
"""

from __future__ import annotations

import sys
import time

from zeus.device import get_gpus

socket_path, index, watts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
(gpu,) = get_gpus([index], backend=f"agent:{socket_path}")
gpu.set_power_limit_w(watts)
print(f"holding {gpu.uuid} at {gpu.get_power_limit_w()} W", flush=True)
time.sleep(600)
