"""Reporting: console, files and TensorBoard, all as callbacks."""

from .callback import Callback, CallbackList
from .console import ConsoleReporter

__all__ = ["Callback", "CallbackList", "ConsoleReporter"]
