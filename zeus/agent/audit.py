"""The audit log: one JSON object per line for every lease, change, restore and refusal.

Keys: ``time`` (ISO 8601, UTC), ``event``, ``uid``, ``pid``, ``job_id``, ``gpu`` (UUID), ``old_w``,
``new_w``, ``reason`` (absent keys: not applicable). Events:

* ``lease`` / ``release``: a lease began (``old_w`` is the limit it will restore) or ended;
* ``set`` / ``reset``: the holder changed a limit (``reset``: back to the default);
* ``restore``: the agent put a limit back (``reason``: the lease was released, its holder exited or
  was killed, or the agent found it in its journal after a restart);
* ``restore_failed``: the driver refused; the agent retries and says so;
* ``refused``: a lease or a change that the agent refused because the caller may not (not on the
  allow-list, not local) or another job holds the GPU (``reason`` says which).

Lines are appended with ``O_APPEND`` and flushed to disk one by one: a crash loses no line written.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def record(self, event: str, **fields: Any) -> None:
        entry = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        entry["event"] = event
        entry.update({k: v for k, v in fields.items() if v is not None})
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self._fd, line)  # one write of one line: O_APPEND keeps lines whole
            os.fsync(self._fd)
        except OSError as e:  # a full disk must not stop restores: say so where operators look
            logger.error("could not write the audit log %s (%s): %s", self.path, e, line.decode())

    def close(self) -> None:
        os.close(self._fd)
