"""`GlobalPowerLimitOptimizer`: profile power limits inside training, then apply the best one.

States: ``waiting`` (the first ``wait_steps`` steps) → for each candidate limit ``warmup`` (run
``warmup_steps`` at the limit) then ``profiling`` (measure ``profile_steps`` in a monitor window) →
``done`` (the limit the selector chose is applied). Candidates go from the GPUs' maximum limit down
in ``pl_step`` W; the search strategy decides which of them are worth measuring. An epoch that ends
while a limit is warming up or being measured makes that limit start over next epoch.

All decisions run on rank 0 and are broadcast (see `zeus.optimizer.power_limit.distributed` for the
data-parallel contract); original limits come back through `LimitGuard` on every way out.

What the GPUs allow (one model, boards of their own, permission) and their temperature and throttle
reasons during each measurement: `zeus.optimizer.power_limit.hardware`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Protocol

from zeus.callback import Callback
from zeus.device.base import GPU
from zeus.errors import ZeusConfigError, ZeusPermissionError, check_range
from zeus.optimizer.power_limit.distributed import Coordinator, make_coordinator
from zeus.optimizer.power_limit.hardware import (
    ThrottleWatch,
    check_one_model,
    probe_permission,
    warn_if_distorted,
    warn_shared_board,
)
from zeus.optimizer.power_limit.profile_store import ProfileKey, load_profile, save_profile
from zeus.optimizer.power_limit.restore import LimitGuard
from zeus.optimizer.power_limit.search import DEFAULT_SEARCH, SearchStrategy, get_search
from zeus.optimizer.power_limit.selectors import (
    OptimumSelector,
    PowerLimitMeasurement,
    SelectionContext,
    ZeusCost,
)

logger = logging.getLogger(__name__)

State = Literal["waiting", "warmup", "profiling", "done"]
_MEASURE, _DONE = 0.0, 1.0
_NO_LIMIT = -1.0


class _WindowResult(Protocol):
    time_s: float
    gpu_energy_j: dict[int, float]


class _Monitor(Protocol):
    """What the optimizer needs of `zeus.monitor.ZeusMonitor`."""

    @property
    def gpus(self) -> Sequence[GPU]: ...

    def begin_window(self, name: str, sync_execution: bool = True) -> None: ...

    def step(self, batch_size: int | None = None, *, forward_only: bool = False) -> None: ...

    def end_window(self, name: str, sync_execution: bool = True) -> Any: ...

    def cancel_window(self, name: str) -> None: ...


class GlobalPowerLimitOptimizer(Callback):
    """Training-loop callback that finds and applies the best GPU power limit.

    Args:
        monitor: a `zeus.monitor.ZeusMonitor`; its GPUs are the ones profiled and limited.
        optimum_selector: how to choose among measured limits (default ``ZeusCost(eta_knob=0.5)``).
        wait_steps: steps to let pass before profiling (compilation, caches).
        warmup_steps: steps run at each limit before measuring it.
        profile_steps: steps measured at each limit.
        pl_step: watts between candidate limits.
        profile_path: directory for saved profiles; a saved profile for the same GPU model, job and
            batch size is reused, so profiling is skipped.
        search: ``"exhaustive"`` (default), ``"descend"``, ``"golden"``, ``"coarse"`` or a
            `SearchStrategy`.
        job: job name in the saved profile's key.
        batch_size: the job's batch size (all ranks together): in the saved profile's key, and the
            size of the steps that ``on_step_end`` marks on the monitor (replay GPUs time them).
        collective_timeout_s: data-parallel only: how long a rank waits for the others in a hook.
    """

    def __init__(
        self,
        monitor: _Monitor,
        optimum_selector: OptimumSelector | None = None,
        wait_steps: int = 1,
        warmup_steps: int = 10,
        profile_steps: int = 40,
        pl_step: int = 25,
        profile_path: str | os.PathLike[str] | None = None,
        search: str | SearchStrategy = DEFAULT_SEARCH,
        *,
        job: str = "default",
        batch_size: int | None = None,
        collective_timeout_s: float = 600.0,
    ) -> None:
        check_range("wait_steps", wait_steps, ge=0)
        check_range("warmup_steps", warmup_steps, ge=0)
        check_range("profile_steps", profile_steps, ge=1)
        check_range("pl_step", pl_step, ge=1)
        check_range("collective_timeout_s", collective_timeout_s, gt=0)
        if batch_size is not None:
            check_range("batch_size", batch_size, ge=1)
        self.monitor = monitor
        self.selector = optimum_selector if optimum_selector is not None else ZeusCost(0.5)
        self.search = get_search(search)
        self.wait_steps = int(wait_steps)
        self.warmup_steps = int(warmup_steps)
        self.profile_steps = int(profile_steps)
        self.pl_step = int(pl_step)
        self.profile_path = profile_path
        self.job = job
        self.batch_size = batch_size
        self.collective_timeout_s = collective_timeout_s

        self.state: State = "waiting"
        self.chosen_power_limit_w: int | None = None
        self.observe_only = False
        self.candidates_w: list[int] = []
        self._measurements: dict[int, PowerLimitMeasurement] = {}
        self._gpus: list[GPU] = list(monitor.gpus)
        check_one_model(self._gpus)
        self._watch = ThrottleWatch(self._gpus)
        self._guard = LimitGuard(self._gpus)
        self._coordinator: Coordinator = Coordinator()
        self._context = SelectionContext(max_power_limit_w=1)
        self._started = False
        self._resume = False
        self._finished = False
        self._current_limit_w: int | None = None
        self._window: str | None = None
        self._steps_in_state = 0
        self._interruptions: dict[int, int] = {}
        self._restart_next_epoch = False
        self._permission_lost = False
        self._unsaved = False
        # Hook counters: ranks must agree on them (data-parallel lockstep check).
        self._epoch_begins = self._epoch_ends = self._step_begins = self._step_ends = 0

    # -- public view ------------------------------------------------------------------------------

    @property
    def measurements(self) -> dict[int, PowerLimitMeasurement]:
        """Measured limits (whole job, per step), highest limit first."""
        return {k: self._measurements[k] for k in sorted(self._measurements, reverse=True)}

    @property
    def rank(self) -> int:
        return self._coordinator.rank

    @property
    def world_size(self) -> int:
        """Processes of the job (1 unless torch.distributed is initialised with more)."""
        return self._coordinator.world_size

    @property
    def num_gpus(self) -> int:
        """GPUs of the whole job, all ranks together (known from the first hook on)."""
        return self._context.num_gpus

    # -- hooks ------------------------------------------------------------------------------------

    def on_train_begin(self) -> None:
        self._ensure_started("on_train_begin")

    def on_epoch_begin(self) -> None:
        self._epoch_begins += 1
        self._ensure_started("on_epoch_begin")
        self._restart_if_interrupted()

    def on_step_begin(self) -> None:
        self._step_begins += 1
        self._ensure_started("on_step_begin")
        self._restart_if_interrupted()

    def on_step_end(self) -> None:
        self._step_ends += 1
        self._ensure_started("on_step_end")
        per_process = None if self.batch_size is None else self.batch_size // self.world_size
        self.monitor.step(per_process or None)
        if self.state == "waiting" and self._step_ends >= self.wait_steps:
            self._next("on_step_end")
        elif self.state == "warmup" and not self._restart_next_epoch:
            self._steps_in_state += 1
            if self._steps_in_state >= self.warmup_steps:
                self._open_window()
        elif self.state == "profiling" and not self._restart_next_epoch:
            self._steps_in_state += 1
            self._watch.sample()
            if self._steps_in_state >= self.profile_steps:
                self._close_window_and_record("on_step_end")

    def on_epoch_end(self) -> None:
        self._epoch_ends += 1
        self._ensure_started("on_epoch_end")
        if self.state == "done":
            return
        self._coordinator.gather_in_lockstep("on_epoch_end", self._counters())
        if self.state in ("warmup", "profiling") and not self._restart_next_epoch:
            self._interrupt()

    def on_train_end(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._window is not None:
            self._discard_window()
        if self.state != "done" and self._started:
            logger.warning(
                "training ended while profiling power limits; measured %s W",
                sorted(self._measurements) or "none",
            )
        self._save_profile()
        self._guard.restore("training ended")

    def __enter__(self) -> GlobalPowerLimitOptimizer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.on_train_end()

    # -- checkpointing ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "chosen_power_limit_w": self.chosen_power_limit_w,
            "observe_only": self.observe_only,
            "measurements": [m.to_dict() for m in self.measurements.values()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._started:
            raise ZeusConfigError("load_state_dict() must be called before the first hook")
        self._measurements = {
            int(m["power_limit_w"]): PowerLimitMeasurement.from_dict(m)
            for m in state.get("measurements", [])
        }
        self._resume = bool(self._measurements) or state.get("state") == "done"

    # -- start: agree on the GPUs, permission and saved profile -----------------------------------

    def _ensure_started(self, hook: str) -> None:
        if self._started:
            return
        self._started = True
        if not self._gpus:
            raise ZeusConfigError(
                "monitor.gpus is empty: GlobalPowerLimitOptimizer needs at least one GPU "
                "(set ZEUS_GPU=replay:<profile> to use a replay GPU)"
            )
        self._coordinator = make_coordinator(self.collective_timeout_s)
        model = self._coordinator.broadcast_object(hook, self._gpus[0].name)
        shared = [g for g in self._gpus if g.capabilities.shared_board]
        may_set, reason = (False, "") if shared else probe_permission(self._gpus)
        local = [
            float(len(self._gpus)),
            float(min(g.max_power_limit_w for g in self._gpus)),
            float(max(g.min_power_limit_w for g in self._gpus)),
            1.0 if may_set else 0.0,
            1.0 if shared else 0.0,
            1.0 if self._gpus[0].name != model else 0.0,
        ]
        rows = self._coordinator.gather(hook, local)
        if any(r[5] for r in rows):
            raise ZeusConfigError(
                f"GPUs of different models across ranks (rank 0: {model}, rank {self.rank}: "
                f"{self._gpus[0].name}) cannot share one power limit"
            )
        if any(r[4] for r in rows):
            warn_shared_board(shared)
            self.state = "done"
            return
        num_gpus = int(sum(r[0] for r in rows))
        max_w, min_w = int(min(r[1] for r in rows)), int(max(r[2] for r in rows))
        self._context = SelectionContext(max_power_limit_w=max_w, num_gpus=num_gpus)
        self.candidates_w = list(range(max_w, min_w - 1, -self.pl_step))
        if not all(r[3] for r in rows):
            current_w = self._gpus[0].get_power_limit_w()
            self._enter_observe_only(reason or "another rank may not change power limits")
            self.candidates_w = [int(self._coordinator.broadcast(hook, [float(current_w)])[0])]
        self._load_saved_profile(hook)
        if self._resume or self.wait_steps == 0 or self._measurements:
            self._next(hook, start_now=self.wait_steps == 0)

    def _enter_observe_only(self, reason: str) -> None:
        if self.observe_only:
            return
        self.observe_only = True
        logger.warning(
            "No permission to change GPU power limits (%s). Observe-only mode: Zeus measures the "
            "current limit, recommends a limit and applies nothing. "
            "See docs/permissions.md to grant permission.",
            reason,
        )

    def _load_saved_profile(self, hook: str) -> None:
        if self.profile_path is None:
            return
        loaded = None
        if self.rank == 0:
            loaded = load_profile(self.profile_path, self._profile_key())
        loaded = self._coordinator.broadcast_object(hook, loaded)
        if loaded:
            for measurement in loaded:
                self._measurements.setdefault(measurement.power_limit_w, measurement)

    def _profile_key(self) -> ProfileKey:
        return ProfileKey(
            gpu_model=self._gpus[0].name,
            job=self.job,
            batch_size=self.batch_size,
            num_gpus=self._context.num_gpus,
        )

    # -- the search: rank 0 decides, every rank follows -------------------------------------------

    def _next(self, hook: str, start_now: bool = True) -> None:
        """Enter the next limit to measure, or finish when the search has seen enough."""
        plan = [_DONE, _NO_LIMIT]
        if self.rank == 0:
            next_w = self._next_candidate()
            if next_w is not None:
                plan = [_MEASURE, float(next_w)]
            elif self._measurements:
                plan = [_DONE, float(self.selector.select(self._sorted(), self._context))]
        kind, limit_w = self._coordinator.broadcast(hook, plan)
        if kind == _MEASURE:
            if start_now:
                self._enter_limit(int(limit_w))
        else:
            self._finish(None if limit_w == _NO_LIMIT else int(limit_w))

    def _next_candidate(self) -> int | None:
        scores = self.selector.scores(self._sorted(), self._context) if self._measurements else {}
        for limit_w, attempts in self._interruptions.items():
            if attempts >= 2 and limit_w not in self._measurements:
                return None  # epochs too short to measure it: stop here (warned already)
        return self.search.next_limit(self.candidates_w, scores)

    def _sorted(self) -> list[PowerLimitMeasurement]:
        return list(self.measurements.values())

    def _enter_limit(self, limit_w: int) -> None:
        self._current_limit_w = limit_w
        logger.info(
            "profiling power limit %d W (%d of at most %d candidates)",
            limit_w,
            len(self._measurements) + 1,
            len(self.candidates_w),
        )
        self._apply_limit(limit_w)
        self._begin_warmup()

    def _begin_warmup(self) -> None:
        self.state = "warmup"
        self._steps_in_state = 0
        if self.warmup_steps == 0:
            self._open_window()

    def _apply_limit(self, limit_w: int) -> None:
        if self.observe_only:
            return
        self._guard.arm()
        try:
            for gpu in self._gpus:
                gpu.set_power_limit_w(limit_w)
        except ZeusPermissionError as error:
            self._permission_lost = True
            self._enter_observe_only(str(error))

    def _finish(self, chosen_w: int | None) -> None:
        self.state = "done"
        self.chosen_power_limit_w = chosen_w
        self._current_limit_w = None
        if chosen_w is None:
            logger.warning("no power limit measured; keeping the original limits")
            self._guard.restore("nothing measured")
        elif self.observe_only:
            logger.info(
                "observe-only: recommended power limit %d W with %r (not applied)",
                chosen_w,
                self.selector,
            )
            self._guard.restore("observe-only")
        else:
            self._apply_limit(chosen_w)
            if not self.observe_only:
                logger.info("chose power limit %d W with %r; applied", chosen_w, self.selector)
        self._save_profile()

    # -- measurement windows ----------------------------------------------------------------------

    def _open_window(self) -> None:
        assert self._current_limit_w is not None
        self._window = f"__GlobalPowerLimitOptimizer_{self._current_limit_w}"
        self.monitor.begin_window(self._window)
        self.state = "profiling"
        self._steps_in_state = 0
        self._watch.reset()
        self._watch.sample()

    def _discard_window(self) -> None:
        assert self._window is not None
        self.monitor.cancel_window(self._window)
        self._window = None

    def _close_window_and_record(self, hook: str) -> None:
        assert self._window is not None and self._current_limit_w is not None
        result: _WindowResult = self.monitor.end_window(self._window)
        self._window = None
        energy_j = float(sum(result.gpu_energy_j.values()))
        local = [float(result.time_s), energy_j, 1.0 if self._permission_lost else 0.0]
        rows = self._coordinator.gather_in_lockstep(
            hook, self._counters(), local + self._watch.row()
        )
        if any(r[2] for r in rows):
            self._enter_observe_only("another rank lost permission")
            self._guard.restore("observe-only")
            self._finish_without_measurement(hook)
            return
        time_s, total_j = max(r[0] for r in rows), sum(r[1] for r in rows)
        max_temperature_c, reasons = ThrottleWatch.combine([r[3:] for r in rows])
        measurement = PowerLimitMeasurement(
            power_limit_w=self._current_limit_w,
            time_per_step_s=time_s / self.profile_steps,
            energy_per_step_j=total_j / self.profile_steps,
            max_temperature_c=max_temperature_c,
            throttle_reasons=reasons,
        )
        warn_if_distorted(measurement.power_limit_w, max_temperature_c, reasons)
        self._measurements[measurement.power_limit_w] = measurement
        self._unsaved = True
        logger.info(
            "power limit %d W: %.4g s/step, %.4g J/step, %.1f W",
            measurement.power_limit_w,
            measurement.time_per_step_s,
            measurement.energy_per_step_j,
            measurement.avg_power_w,
        )
        self._next(hook)

    def _finish_without_measurement(self, hook: str) -> None:
        plan = [_DONE, _NO_LIMIT]
        if self.rank == 0 and self._measurements:
            plan = [_DONE, float(self.selector.select(self._sorted(), self._context))]
        _, limit_w = self._coordinator.broadcast(hook, plan)
        self._finish(None if limit_w == _NO_LIMIT else int(limit_w))

    def _interrupt(self) -> None:
        """The epoch ended mid-measurement: measure this limit again next epoch."""
        assert self._current_limit_w is not None
        if self._window is not None:
            self._discard_window()
        attempts = self._interruptions.get(self._current_limit_w, 0) + 1
        self._interruptions[self._current_limit_w] = attempts
        if attempts >= 2:
            logger.warning(
                "an epoch is shorter than warmup_steps + profile_steps (%d + %d): stopping the "
                "power-limit search with %d limits measured; lower them to measure every candidate",
                self.warmup_steps,
                self.profile_steps,
                len(self._measurements),
            )
            self._next("on_epoch_end")
            return
        self._restart_next_epoch = True

    def _restart_if_interrupted(self) -> None:
        if self._restart_next_epoch and self.state in ("warmup", "profiling"):
            self._restart_next_epoch = False
            logger.info("measuring power limit %s W again in this epoch", self._current_limit_w)
            self._begin_warmup()

    def _counters(self) -> list[float]:
        return [
            float(self._epoch_begins),
            float(self._epoch_ends),
            float(self._step_begins),
            float(self._step_ends),
        ]

    def _save_profile(self) -> None:
        if self.profile_path is None or not self._unsaved or self.rank != 0:
            return
        self._unsaved = False
        save_profile(self.profile_path, self._profile_key(), self._sorted())
