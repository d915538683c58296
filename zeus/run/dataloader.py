"""`ZeusDataLoader`: a torch `DataLoader` that profiles power limits and stops training on time.

The loader constructed with ``max_epochs`` is the *train loader*; any other is an *eval loader*::

    train_loader = ZeusDataLoader(train_set, batch_size=256, max_epochs=100)
    eval_loader = ZeusDataLoader(eval_set, batch_size=256)
    for epoch in train_loader.epochs():
        for batch in train_loader: ...
        for batch in eval_loader: ...
        train_loader.report_metric(accuracy, higher_is_better=True)

Iterating the train loader drives the one power-limit engine,
`zeus.optimizer.power_limit.GlobalPowerLimitOptimizer` (epoch begin/end around the pass, step
begin/end around every batch), so profiling happens just in time in the first epoch. Every epoch
(train + eval) is one monitor window; its energy–time cost (`zeus.cost.CostModel`) decides whether
the next epoch may start.

Parameters: a constructor argument wins; an argument left as ``None`` is read from the ``ZEUS_*``
environment variable that `ZeusMaster` sets for the jobs it launches; otherwise a default applies.
"""

from __future__ import annotations

import json
import logging
import math
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from zeus.cost import CostModel
from zeus.errors import ZeusConfigError
from zeus.run.dataloader_config import PROFILE_JOB, TRAIN_ONLY_ARGS, RunConfig, resolve_config

if TYPE_CHECKING:
    from zeus.monitor import ZeusMonitor
    from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Distributed helpers: every rank measures its own GPU(s); decisions come out the same on every rank.


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _reduce(values: list[float], op: str) -> list[float]:
    """All-reduce ``values`` across ranks with ``op`` ("sum"/"max"); identity without a group."""
    if not _dist_ready():
        return values
    dist = torch.distributed
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return [float(v) for v in tensor.cpu().tolist()]


def _from_rank0(reached: bool, metric: float | None) -> tuple[bool, float | None]:
    """Rank 0's stop decision and metric, so that every rank stops after the same epoch."""
    if not _dist_ready():
        return reached, metric
    dist = torch.distributed
    values = [float(reached), math.nan if metric is None else metric]
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.broadcast(tensor, src=0)
    shared_reached, shared_metric = (float(v) for v in tensor.cpu().tolist())
    return bool(shared_reached), None if math.isnan(shared_metric) else shared_metric


def _rank() -> int:
    return torch.distributed.get_rank() if _dist_ready() else 0


def _local_gpu_index() -> int:
    """The GPU this process trains on, as `get_gpus()` indexes them: the current CUDA device, else
    ``LOCAL_RANK`` (or the rank) under `torch.distributed`, else 0."""
    if torch.cuda.is_available():
        return torch.cuda.current_device()
    return int(os.environ.get("LOCAL_RANK", _rank()))


# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch (train + eval), summed over every rank."""

    energy_j: float
    time_s: float
    cost: float
    metric: float | None


@dataclass
class _TrainRun:
    """Everything that lives from the start of `epochs()` to its end."""

    monitor: ZeusMonitor
    optimizer: GlobalPowerLimitOptimizer | None
    cost_model: CostModel
    epoch: int = -1
    in_epoch: bool = False
    metric: float | None = None
    reached: bool = False
    eval_energy_j: float = 0.0
    eval_time_s: float = 0.0
    history: list[EpochRecord] = field(default_factory=list)

    @property
    def energy_j(self) -> float:
        return sum(r.energy_j for r in self.history)

    @property
    def time_s(self) -> float:
        return sum(r.time_s for r in self.history)

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.history)


_training_loaders: weakref.WeakSet[ZeusDataLoader] = weakref.WeakSet()
"""Train loaders whose `epochs()` has started and not finished (at most one)."""
_SECOND_TRAIN_LOADER = (
    "another train loader is training: only one loader per run may be constructed with "
    "max_epochs; leave max_epochs out of eval loaders"
)
_active_run: _TrainRun | None = None


class ZeusDataLoader(DataLoader[Any]):
    """A `torch.utils.data.DataLoader` that optimizes the GPU power limit and stops on time.

    Args beyond `DataLoader`'s (keyword-only, train loader only; eval loaders take none of them):
        max_epochs: makes this the train loader; training never runs more epochs.
        target_metric: stop once the reported metric reaches it (``ZEUS_TARGET_METRIC``).
        cost_thresh: stop before an epoch whose cost would cross it (``ZEUS_COST_THRESH``; inf).
        eta_knob: weight of energy against time in the cost, in [0, 1] (``ZEUS_ETA_KNOB``; 0.5).
        log_dir: where the result JSON (and power profiles) go (``ZEUS_LOG_DIR``; none).
        job_id: prefix of this run's files (``ZEUS_JOB_ID``; "zeus").
        profile_params: (warmup, measure) steps per power limit (``ZEUS_PROFILE_PARAMS``; 10, 40).
        use_optimal_pl: False = observe only, never change the limit (``ZEUS_USE_OPTIMAL_PL``).
        monitor: the `ZeusMonitor` to measure with (pass one to measure several GPUs, as with
            ``DataParallel``); default: one over this process's GPU from `zeus.device.get_gpus()`
            (the current CUDA device; ``LOCAL_RANK``'s under `torch.distributed`), created when
            `epochs()` starts.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        *args: Any,
        max_epochs: int | None = None,
        target_metric: float | None = None,
        cost_thresh: float | None = None,
        eta_knob: float | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        job_id: str | None = None,
        profile_params: tuple[int, int] | None = None,
        use_optimal_pl: bool | None = None,
        monitor: ZeusMonitor | None = None,
        **kwargs: Any,
    ) -> None:
        zeus_args = {
            "target_metric": target_metric,
            "cost_thresh": cost_thresh,
            "eta_knob": eta_knob,
            "log_dir": log_dir,
            "job_id": job_id,
            "profile_params": profile_params,
            "use_optimal_pl": use_optimal_pl,
            "monitor": monitor,
        }
        self._config: RunConfig | None = None
        if max_epochs is None:
            given = [k for k in (*TRAIN_ONLY_ARGS, "monitor") if zeus_args[k] is not None]
            if given:
                raise ZeusConfigError(
                    f"{', '.join(given)} only apply to the train loader (the one constructed with "
                    "max_epochs); leave them out of eval loaders"
                )
        else:
            if _training_loaders:
                raise ZeusConfigError(_SECOND_TRAIN_LOADER)
            self._config = resolve_config(max_epochs, {k: zeus_args[k] for k in TRAIN_ONLY_ARGS})
        super().__init__(dataset, batch_size, *args, **kwargs)
        self._monitor = monitor
        self._run: _TrainRun | None = None

    # ---------------------------------------------------------------------------------------------
    # Public API

    @property
    def is_train_loader(self) -> bool:
        """True for the loader constructed with ``max_epochs``."""
        return self._config is not None

    @property
    def config(self) -> RunConfig:
        """The resolved run parameters (train loader only)."""
        return self._require_train("config")

    @property
    def power_limit_optimizer(self) -> GlobalPowerLimitOptimizer | None:
        """The power-limit engine of the running (or last) training run; None if not used."""
        return None if self._run is None else self._run.optimizer

    @property
    def history(self) -> list[EpochRecord]:
        """The finished epochs of the running (or last) training run."""
        return [] if self._run is None else list(self._run.history)

    @property
    def monitor(self) -> ZeusMonitor | None:
        """The monitor measuring this run (None before `epochs()` starts unless one was given)."""
        return self._monitor

    def epochs(self) -> Iterator[int]:
        """Yield epoch numbers 0, 1, ... until the target, ``max_epochs`` or the cost threshold."""
        config = self._require_train("epochs()")
        if self._run is not None:
            raise ZeusConfigError(
                "epochs() runs once per train loader; construct a new one to train again"
            )
        if _training_loaders:
            raise ZeusConfigError(_SECOND_TRAIN_LOADER)
        self._run = self._start_run(config)
        return self._epoch_generator(config, self._run)

    def report_metric(self, metric: float, higher_is_better: bool = True) -> None:
        """Report this epoch's validation metric; training stops once it reaches the target."""
        self._require_train("report_metric()")
        run = self._run
        if run is None or not run.in_epoch:
            raise ZeusConfigError(
                "report_metric() must be called inside `for epoch in train_loader.epochs():`"
            )
        run.metric = float(metric)
        target = self.config.target_metric
        if target is not None:
            run.reached = run.metric >= target if higher_is_better else run.metric <= target
        if run.optimizer is not None:
            run.optimizer.on_evaluate(run.metric)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # a generator, not _BaseDataLoaderIter
        if self._config is None:
            return self._eval_batches()
        run = self._run
        if run is None or not run.in_epoch:
            if _training_loaders and self not in _training_loaders:
                raise ZeusConfigError(_SECOND_TRAIN_LOADER)
            raise ZeusConfigError(
                "iterate the train loader inside `for epoch in train_loader.epochs():`"
            )
        return self._train_batches(run)

    # ---------------------------------------------------------------------------------------------
    # Internals

    def _require_train(self, what: str) -> RunConfig:
        if self._config is None:
            raise ZeusConfigError(
                f"{what} is only available on the train loader (the one constructed with max_epochs)"
            )
        return self._config

    def _effective_batch_size(self) -> int:
        """The job's batch size: this loader's, times the world size under `torch.distributed`."""
        per_rank = self.batch_size or getattr(self.batch_sampler, "batch_size", 1) or 1
        world_size = torch.distributed.get_world_size() if _dist_ready() else 1
        return int(per_rank) * world_size

    def _start_run(self, config: RunConfig) -> _TrainRun:
        monitor = self._monitor or _default_monitor()
        self._monitor = monitor
        if not monitor.gpus:
            logger.warning(
                "ZeusDataLoader: no GPU to measure or optimize (set ZEUS_GPU=replay:<profile> to "
                "use a replay GPU); measuring time only"
            )
        local_max_w = float(sum(gpu.max_power_limit_w for gpu in monitor.gpus))
        (max_power_w,) = _reduce([local_max_w], "sum")
        optimizer = None
        if config.use_optimal_pl and monitor.gpus:
            optimizer = self._make_optimizer(config, monitor)
        elif monitor.gpus:
            logger.info("ZeusDataLoader: observe only (use_optimal_pl is false), power limit kept")
        cost_model = CostModel(config.eta_knob, max_power_w)
        return _TrainRun(monitor=monitor, optimizer=optimizer, cost_model=cost_model)

    def _make_optimizer(self, config: RunConfig, monitor: ZeusMonitor) -> GlobalPowerLimitOptimizer:
        from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer, ZeusCost

        # Profiles saved in log_dir are reused by later recurrences with the same batch size.
        return GlobalPowerLimitOptimizer(
            monitor,
            optimum_selector=ZeusCost(config.eta_knob),
            warmup_steps=config.warmup_steps,
            profile_steps=config.profile_steps,
            profile_path=config.log_dir,
            job=PROFILE_JOB,
            batch_size=self._effective_batch_size(),
        )

    def _epoch_generator(self, config: RunConfig, run: _TrainRun) -> Iterator[int]:
        global _active_run
        stop_reason: str | None = None
        _training_loaders.add(self)
        try:
            if run.optimizer is not None:
                run.optimizer.on_train_begin()
            for epoch in range(config.max_epochs):
                if run.history and self._would_cross_threshold(config, run):
                    stop_reason = "cost_threshold"
                    break
                self._begin_epoch(run, epoch)
                _active_run = run
                try:
                    yield epoch
                except BaseException:
                    # The loop body raised or broke out: close locally, no collectives (another
                    # rank may be gone), no result.
                    _active_run, run.in_epoch = None, False
                    run.monitor.cancel_window(_epoch_window(epoch))
                    raise
                _active_run = None
                self._end_epoch(config, run)
                if run.reached:
                    stop_reason = "target"
                    break
            else:
                stop_reason = "max_epochs"
        finally:
            _training_loaders.discard(self)
            if run.optimizer is not None:
                run.optimizer.on_train_end()
            self._finish(config, run, stop_reason)

    def _would_cross_threshold(self, config: RunConfig, run: _TrainRun) -> bool:
        predicted = run.cost + run.history[-1].cost
        if predicted <= config.cost_thresh:
            return False
        logger.info(
            "ZeusDataLoader: stopping before epoch %d: predicted cost %.1f would cross the "
            "threshold %.1f",
            len(run.history),
            predicted,
            config.cost_thresh,
        )
        return True

    def _begin_epoch(self, run: _TrainRun, epoch: int) -> None:
        run.epoch, run.in_epoch, run.metric, run.reached = epoch, True, None, False
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        run.monitor.begin_window(_epoch_window(epoch))

    def _end_epoch(self, config: RunConfig, run: _TrainRun) -> None:
        run.in_epoch = False
        measurement = run.monitor.end_window(_epoch_window(run.epoch))
        (energy_j,) = _reduce([measurement.total_energy_j], "sum")
        (time_s,) = _reduce([measurement.time_s], "max")
        run.reached, run.metric = _from_rank0(run.reached, run.metric)
        cost = run.cost_model.cost(energy_j, time_s)
        run.history.append(EpochRecord(energy_j, time_s, cost, run.metric))
        logger.info(
            "ZeusDataLoader: epoch %d: %.1f J, %.2f s, cost %.1f, metric %s",
            run.epoch,
            energy_j,
            time_s,
            cost,
            "none reported" if run.metric is None else f"{run.metric:g}",
        )

    def _train_batches(self, run: _TrainRun) -> Iterator[Any]:
        optimizer = run.optimizer
        if optimizer is None:  # no engine to mark the steps: mark them here
            for batch in super().__iter__():
                yield batch
                run.monitor.step(self.batch_size)
            return
        optimizer.on_epoch_begin()
        step_open = False
        try:
            for batch in super().__iter__():
                optimizer.on_step_begin()
                step_open = True
                yield batch
                optimizer.on_step_end()
                step_open = False
        finally:
            if step_open:
                optimizer.on_step_end()
            optimizer.on_epoch_end()

    def _eval_batches(self) -> Iterator[Any]:
        run = _active_run
        if run is None:
            yield from super().__iter__()
            return
        window = f"zeus-dataloader-eval-{run.epoch}-{id(self)}"
        run.monitor.begin_window(window)
        try:
            for batch in super().__iter__():
                yield batch
                run.monitor.step(self.batch_size, forward_only=True)
        finally:
            measurement = run.monitor.end_window(window)
            run.eval_energy_j += measurement.total_energy_j
            run.eval_time_s += measurement.time_s

    def _finish(self, config: RunConfig, run: _TrainRun, stop_reason: str | None) -> None:
        if stop_reason is None:
            logger.warning(
                "ZeusDataLoader: training left epochs() early (exception or break); no result written"
            )
            return
        result = self._result(config, run, stop_reason)
        if _rank() != 0:
            return
        _log_summary(result, run, self._monitor)
        path = config.result_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=2))
            os.replace(tmp, path)
            logger.info("ZeusDataLoader: result written to %s", path)

    def _result(self, config: RunConfig, run: _TrainRun, stop_reason: str) -> dict[str, Any]:
        power_limit_w: int | None = None
        if run.optimizer is not None and not run.optimizer.observe_only:
            power_limit_w = run.optimizer.chosen_power_limit_w
        elif run.monitor.gpus:
            power_limit_w = run.monitor.gpus[0].get_power_limit_w()
        return {
            "job_id": config.job_id,
            "batch_size": self._effective_batch_size(),
            "power_limit_w": power_limit_w,
            "epochs": len(run.history),
            "energy_j": run.energy_j,
            "time_s": run.time_s,
            "reached": stop_reason == "target",
            "final_metric": run.history[-1].metric if run.history else None,
            "cost": run.cost,
            "eta_knob": run.cost_model.eta_knob,
            "max_power_w": run.cost_model.max_power_w,
            "stop_reason": stop_reason,
        }


def _epoch_window(epoch: int) -> str:
    return f"zeus-dataloader-epoch-{epoch}"


def _default_monitor() -> ZeusMonitor:
    """A monitor of this process's GPU only: never limit GPUs that other jobs may be using."""
    from zeus.device import get_gpus
    from zeus.monitor import ZeusMonitor

    gpus = get_gpus()
    if not gpus:
        return ZeusMonitor(gpus=[])
    return ZeusMonitor(gpus=gpus, gpu_indices=[_local_gpu_index()])


def _log_summary(result: dict[str, Any], run: _TrainRun, monitor: ZeusMonitor | None) -> None:
    gpus = [] if monitor is None else monitor.gpus
    models = ", ".join(sorted({gpu.name for gpu in gpus})) or "no GPU"
    if any(gpu.capabilities.simulated for gpu in gpus):
        models += ": replay GPU, simulated figures"
    limit, metric = result["power_limit_w"], result["final_metric"]
    logger.info(
        "ZeusDataLoader: stopped after %d epoch(s) (%s), metric %s: %.1f J (eval %.1f J), %.2f s, "
        "cost %.1f at eta %.2f, power limit %s on %s",
        result["epochs"],
        result["stop_reason"],
        "none" if metric is None else f"{metric:.4g}",
        result["energy_j"],
        run.eval_energy_j,
        result["time_s"],
        result["cost"],
        result["eta_knob"],
        "not chosen" if limit is None else f"{limit} W",
        models,
    )
