"""Whether run() writes TensorBoard files, decided before anything is created, and said when not.

Asked for (`tensorboard=True`) without tensorboardX: an ImportError before the experiment
directory exists. Expected (the default, a real run) without it: one warning per process, so a
user who opens TensorBoard on the experiment knows why it is empty and what to install.
"""

from __future__ import annotations

import logging

from .tensorboard import tensorboardx_available

logger = logging.getLogger("asynctune.reporting.tensorboard")

INSTALL_HINT = "pip install 'asynctune[tensorboard]'"
_warned = False


def tensorboard_wanted(tensorboard: bool | None, *, batched: bool) -> bool:
    """run()'s `tensorboard=` resolved: True writes event files; raises if True cannot be honoured.

    Example:
        >>> tensorboard_wanted(None, batched=False)  # True with tensorboardX installed
        True
    """
    global _warned
    if tensorboard is True and not tensorboardx_available():
        raise ImportError(f"run: tensorboard=True needs tensorboardX: {INSTALL_HINT}")
    if tensorboard is None and not batched and not tensorboardx_available():
        if not _warned:
            _warned = True
            logger.warning("no TensorBoard files are written: tensorboardX is not installed (%s); "
                           "pass tensorboard=False to run() to say you do not want them", INSTALL_HINT)
        return False
    return bool(tensorboard) or (tensorboard is None and not batched)
