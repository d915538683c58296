"""Energy measurement: `ZeusMonitor` (named windows) and `PowerMonitor` (background power sampling)."""

from zeus.monitor.energy import Measurement, Window, ZeusMonitor
from zeus.monitor.power import PowerMonitor

__all__ = ["Measurement", "PowerMonitor", "Window", "ZeusMonitor"]
