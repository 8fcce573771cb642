"""Schedulers: what to do with running trials (FIFO, median stopping, HyperBand, ASHA, MO-ASHA, PBT)."""

from .asha import ASHAScheduler, AsyncHyperBandScheduler
from .fifo import FIFOScheduler
from .hyperband import HyperBandScheduler
from .median_stopping import MedianStoppingRule
from .mo_asha import MOASHAScheduler
from .pbt import PopulationBasedTraining

__all__ = ["ASHAScheduler", "AsyncHyperBandScheduler", "FIFOScheduler", "HyperBandScheduler", "MOASHAScheduler",
           "MedianStoppingRule", "PopulationBasedTraining"]
