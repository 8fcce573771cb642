"""Can run()'s config travel to the workers? Checked key by key, so the error names the key.

Every trial's config is pickled to reach its worker (and the run's arguments are kept for a
resume), so an object that cannot be pickled (an open file for writing, a lock, a client with
a socket) fails there with pickle's own message, which names no key. This walks the config
first and names the value's place, e.g. config['data']['log'].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cloudpickle

from .space import Domain, Path, format_path


def check_config_picklable(config: Mapping[str, Any] | None) -> None:
    """Raise ValueError naming the first value of `config` that cannot be pickled.

    Example:
        >>> check_config_picklable({"lr": 0.1, "log": open("log.txt", "w")})
        Traceback (most recent call last):
        ValueError: run: config['log'] (a TextIOWrapper) cannot be pickled to send it to the workers: ...
    """
    if not isinstance(config, Mapping):
        return
    try:
        cloudpickle.dumps(config)
    except Exception:  # noqa: BLE001  find which value, below
        _name_the_value(config, ())


def _name_the_value(node: Any, path: Path) -> None:
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, (list, tuple)) else ()
    for key, value in items:
        try:
            cloudpickle.dumps(value)
        except Exception as exc:  # noqa: BLE001  the error to explain
            if isinstance(value, (Mapping, list, tuple)) and not isinstance(value, Domain):
                _name_the_value(value, (*path, key))
            raise ValueError(
                f"run: {format_path((*path, key))} (a {type(value).__name__}) cannot be pickled to send it to "
                f"the workers: {type(exc).__name__}: {exc}. Create it inside the trainable (e.g. open the file "
                f"there) and put what it needs to know, such as a path, in the config") from None
