"""Reporting: console, files and TensorBoard, all as callbacks."""

from .callback import Callback, CallbackList
from .console import ConsoleReporter
from .decisions import DecisionLog
from .tensorboard import TensorBoardLogger

__all__ = ["Callback", "CallbackList", "ConsoleReporter", "DecisionLog", "TensorBoardLogger"]
