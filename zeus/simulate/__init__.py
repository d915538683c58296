"""Trace-driven simulation of Zeus's policies on the published traces (or your own)."""

from zeus.simulate.job_run import HistoryEntry, SimulationError
from zeus.simulate.simulator import Simulator
from zeus.simulate.traces import (
    GPUS,
    WORKLOADS,
    PowerTrace,
    TrainTrace,
    Workload,
    load_power_trace,
    load_train_trace,
    workload,
)

__all__ = [
    "GPUS",
    "WORKLOADS",
    "HistoryEntry",
    "PowerTrace",
    "SimulationError",
    "Simulator",
    "TrainTrace",
    "Workload",
    "load_power_trace",
    "load_train_trace",
    "workload",
]
