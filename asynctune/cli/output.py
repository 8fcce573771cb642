"""What the commands print with, and the error a command ends with (one line, exit status 2)."""

from __future__ import annotations

import sys
from typing import Any


class CommandError(Exception):
    """A mistake of the user's (a wrong path, a missing extra): one line, exit status 2."""


def make_console() -> Any:
    from rich.console import Console

    interactive = sys.stdout.isatty()
    return Console(highlight=False, soft_wrap=False, width=None if interactive else 160)


def new_table(title: str) -> Any:
    from rich import box
    from rich.table import Table

    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)


def fmt(value: Any, digits: int = 6) -> str:
    from ..reporting.console import format_value

    return format_value(value, digits)
