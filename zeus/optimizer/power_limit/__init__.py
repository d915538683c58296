"""Power-limit optimization inside training: `GlobalPowerLimitOptimizer` and its selectors.

```python
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer, ZeusCost

plo = GlobalPowerLimitOptimizer(ZeusMonitor(), ZeusCost(eta_knob=0.5))
```

See ``docs/power-limit.md``.
"""

from zeus.optimizer.power_limit.distributed import ZeusDistributedError
from zeus.optimizer.power_limit.optimizer import GlobalPowerLimitOptimizer
from zeus.optimizer.power_limit.report import ProfileReport
from zeus.optimizer.power_limit.search import (
    CoarseToFine,
    Descend,
    Exhaustive,
    GoldenSection,
    SearchStrategy,
    get_search,
)
from zeus.optimizer.power_limit.selectors import (
    Energy,
    MaxSlowdownConstraint,
    OptimumSelector,
    PowerLimitMeasurement,
    SelectionContext,
    Time,
    ZeusCost,
    choose_power_limit,
)

__all__ = [
    "CoarseToFine",
    "Descend",
    "Energy",
    "Exhaustive",
    "GlobalPowerLimitOptimizer",
    "GoldenSection",
    "MaxSlowdownConstraint",
    "OptimumSelector",
    "PowerLimitMeasurement",
    "ProfileReport",
    "SearchStrategy",
    "SelectionContext",
    "Time",
    "ZeusCost",
    "ZeusDistributedError",
    "choose_power_limit",
    "get_search",
]
