"""Virtual-time executor: recorded or synthetic learning curves, no processes, reproducible."""

from .executor import SimulatedExecutor, Workload, replay

__all__ = ["SimulatedExecutor", "Workload", "replay"]
