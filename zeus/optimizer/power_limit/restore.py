"""Put the GPUs' original power limits back however the process ends.

`LimitGuard` remembers each GPU's limit before the first change and restores it on ``restore()``,
at interpreter exit (``atexit``, which also covers an exception that ends the program) and on SIGINT
or SIGTERM. Its signal handlers restore, then hand the signal to whatever handler was installed
before (Python's ``KeyboardInterrupt`` for SIGINT, the default action for SIGTERM), so the program
ends the way it would have without Zeus.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from zeus.device.base import GPU
from zeus.errors import ZeusError

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class LimitGuard:
    """Restores the original power limits of ``gpus`` once they have been changed."""

    def __init__(self, gpus: Sequence[GPU]) -> None:
        self._gpus = list(gpus)
        self._original_w: dict[int, int] = {}
        self._previous_handlers: dict[int, Any] = {}
        self._lock = threading.RLock()
        self._armed = False

    @property
    def armed(self) -> bool:
        """True between the first change and the restore."""
        return self._armed

    @property
    def original_limits_w(self) -> dict[int, int]:
        """Original limit per GPU index (empty until armed)."""
        return dict(self._original_w)

    def arm(self) -> None:
        """Remember the current limits and install the exit hooks; call before changing a limit."""
        with self._lock:
            if self._armed:
                return
            self._original_w = {gpu.index: gpu.get_power_limit_w() for gpu in self._gpus}
            self._armed = True
            atexit.register(self._restore_at_exit)
            self._install_signal_handlers()

    def restore(self, reason: str, level: int = logging.INFO) -> None:
        """Set every GPU back to its original limit (idempotent) and remove the exit hooks.

        ``level`` is that of the log line saying so; signal and exit paths use WARNING so that it
        shows even where logging is not configured."""
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            atexit.unregister(self._restore_at_exit)
            self._uninstall_signal_handlers()
            for gpu in self._gpus:
                original_w = self._original_w[gpu.index]
                try:
                    if gpu.get_power_limit_w() != original_w:
                        gpu.set_power_limit_w(original_w)
                except (ZeusError, OSError) as error:
                    logger.error(
                        "could not restore GPU %d power limit to %d W (%s): %s",
                        gpu.index,
                        original_w,
                        reason,
                        error,
                    )
                else:
                    logger.log(
                        level,
                        "restored GPU %d power limit to its original %d W (%s)",
                        gpu.index,
                        original_w,
                        reason,
                    )

    def _restore_at_exit(self) -> None:
        self.restore("interpreter exit", logging.WARNING)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not in the main thread: limits are restored at exit, not on signals")
            return
        for signum in _SIGNALS:
            self._previous_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _uninstall_signal_handlers(self) -> None:
        for signum, previous in self._previous_handlers.items():
            try:
                if signal.getsignal(signum) == self._on_signal:
                    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            except ValueError:  # not the main thread any more; the handler stays harmless
                logger.debug("could not uninstall the handler of signal %d", signum)
        self._previous_handlers = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        self.restore(f"received {signal.Signals(signum).name}", logging.WARNING)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:  # SIG_DFL (or unknown): let the default action end the process
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
