"""Reading experiments back: `ExperimentAnalysis`, and plots (plot.py, needs matplotlib)."""

from .experiment import ExperimentAnalysis, find_experiments, load_experiments

__all__ = ["ExperimentAnalysis", "find_experiments", "load_experiments"]
