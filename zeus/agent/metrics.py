"""The agent's Prometheus metrics: what the `Meter` last sampled, in the text format.

On when ``metrics_port`` is set. Prometheus scrapes ``GET /metrics`` on that port, a TCP listener of
its own that answers nothing else and needs no token (it changes nothing and tells no more than the
metrics); readers of the UNIX socket get the same page. A lifespan task samples every
``metrics_interval_s``: it reads the GPUs on the event loop, saves the totals (off the loop), then
shows them, so a scrape never reads a device and never sees a total that is not on disk.

Series (``gpu``: index on the node; ``uuid``; ``job_id`` and ``lease``: the lease holder's):

* ``zeus_agent_gpu_info{gpu, uuid, name, simulated}`` 1;
* ``zeus_agent_gpu_power_watts``, ``zeus_agent_gpu_power_limit_watts``,
  ``zeus_agent_gpu_default_power_limit_watts`` (gauges);
* ``zeus_agent_gpu_energy_joules_total``: all the GPU drew since the agent first saw it;
* ``zeus_agent_gpu_power_limit_changes_total{event}``: ``set``/``reset`` by holders, ``restore``
  by the agent;
* ``zeus_agent_gpu_lease_info{job_id, lease}`` 1 while a lease holds the GPU;
* ``zeus_agent_lease_energy_joules_total{job_id, lease}``: what the GPU drew for that lease, shown
  until `zeus.agent.meter.ENDED_LEASE_SHOWN_S` after it ended. Energy per job:
  ``sum by (job_id) (max_over_time(zeus_agent_lease_energy_joules_total[1h]))``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from zeus.agent.meter import Meter

logger = logging.getLogger(__name__)

GPU_LABELS = ["gpu", "uuid"]


class _SnapshotCollector(Collector):
    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def collect(self) -> Iterator[Metric]:
        snapshot = self.meter.shown
        if snapshot is None:
            return
        info = GaugeMetricFamily(
            "zeus_agent_gpu_info",
            "The agent's GPUs (simulated: a replay GPU).",
            labels=[*GPU_LABELS, "name", "simulated"],
        )
        power = GaugeMetricFamily("zeus_agent_gpu_power_watts", "GPU power.", labels=GPU_LABELS)
        limit = GaugeMetricFamily(
            "zeus_agent_gpu_power_limit_watts", "GPU power limit now.", labels=GPU_LABELS
        )
        default = GaugeMetricFamily(
            "zeus_agent_gpu_default_power_limit_watts",
            "The GPU's default power limit.",
            labels=GPU_LABELS,
        )
        energy = CounterMetricFamily(
            "zeus_agent_gpu_energy_joules",
            "Energy the GPU drew since the agent first saw it (kept across agent restarts).",
            labels=GPU_LABELS,
        )
        changes = CounterMetricFamily(
            "zeus_agent_gpu_power_limit_changes",
            "Power limit changes: set or reset by lease holders, restore by the agent.",
            labels=[*GPU_LABELS, "event"],
        )
        for gpu in snapshot.gpus:
            labels = [str(gpu.index), gpu.uuid]
            info.add_metric([*labels, gpu.name, str(gpu.simulated).lower()], 1.0)
            power.add_metric(labels, gpu.power_w)
            limit.add_metric(labels, gpu.limit_w)
            default.add_metric(labels, gpu.default_limit_w)
            energy.add_metric(labels, gpu.energy_j)
            for event, n in gpu.changes.items():
                changes.add_metric([*labels, event], n)
        holders = GaugeMetricFamily(
            "zeus_agent_gpu_lease_info",
            "1 for the lease that holds the GPU, with its job id.",
            labels=[*GPU_LABELS, "job_id", "lease"],
        )
        lease_energy = CounterMetricFamily(
            "zeus_agent_lease_energy_joules",
            "Energy the GPU drew for a lease (live or ended in the last minutes).",
            labels=[*GPU_LABELS, "job_id", "lease"],
        )
        for lease in snapshot.leases:
            labels = [str(lease.index), lease.uuid, lease.job_id, lease.lease]
            lease_energy.add_metric(labels, lease.energy_j)
            if lease.live:
                holders.add_metric(labels, 1.0)
        yield from (info, power, limit, default, energy, changes, holders, lease_energy)


def make_registry(meter: Meter) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_SnapshotCollector(meter))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def sample_and_save(meter: Meter) -> None:
    """One sample, saved then shown, all on the calling thread (start and shutdown)."""
    snapshot = meter.sample()
    meter.save(snapshot)
    meter.show(snapshot)


async def sample_forever(meter: Meter, interval_s: float) -> None:
    """Sample every ``interval_s`` (on the loop), save off the loop, then show."""
    next_s = time.monotonic()
    while True:
        try:
            snapshot = meter.sample()
            await asyncio.to_thread(meter.save, snapshot)
            meter.show(snapshot)
        except Exception:  # never let the sampler die: the next sample tries again
            logger.exception("metrics: sampling failed; retrying")
        next_s += interval_s
        now_s = time.monotonic()
        if next_s < now_s:  # fell behind: skip, do not burst
            next_s = now_s + interval_s
        await asyncio.sleep(next_s - now_s)
