"""Energy measurement: `ZeusMonitor` (named windows), `PowerMonitor` (background power sampling) and
`PrometheusExporter` (both as Prometheus metrics)."""

from zeus.monitor.energy import Measurement, Window, ZeusMonitor
from zeus.monitor.exporters import PrometheusExporter
from zeus.monitor.power import PowerMonitor

__all__ = ["Measurement", "PowerMonitor", "PrometheusExporter", "Window", "ZeusMonitor"]
