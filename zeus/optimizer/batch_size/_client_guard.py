"""Ends a BSO trial as failed when the training process dies, chaining every earlier handler."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

logger = logging.getLogger(__name__)

_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class FailureGuard:
    """Runs ``on_failure`` when the process dies: uncaught exception, SIGTERM/SIGINT, or exit.

    Previous handlers are chained, never replaced: after ``on_failure`` the earlier excepthook or
    signal handler runs (or the default action, which for SIGTERM terminates the process).
    """

    def __init__(self, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        self._installed = False
        self._prev_excepthook: Any = None
        self._prev_signals: dict[int, Any] = {}

    def install(self) -> None:
        if self._installed:
            return
        self._installed = True
        atexit.register(self._at_exit)
        self._prev_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not on the main thread: no signal handlers for the BSO trial")
            return
        for sig in _HANDLED_SIGNALS:
            self._prev_signals[sig] = signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        if not self._installed:
            return
        self._installed = False
        atexit.unregister(self._at_exit)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._prev_excepthook
        for sig, prev in self._prev_signals.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, prev)
        self._prev_signals.clear()

    def _at_exit(self) -> None:
        self._on_failure()

    def _excepthook(
        self, kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        self._on_failure()
        self._prev_excepthook(kind, value, tb)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.warning("signal %d: ending the BSO trial as failed", signum)
        self._on_failure()
        prev = self._prev_signals.get(signum, signal.SIG_DFL)
        self.uninstall()
        if callable(prev):
            prev(signum, frame)
        elif prev == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
