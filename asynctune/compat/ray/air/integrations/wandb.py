"""Ray's `ray.air.integrations.wandb`: asynctune.integrations.wandb with Ray's arguments.

    tune.RunConfig(callbacks=[WandbLoggerCallback(project="mnist", mode="offline")])

W&B itself is imported only when a callback is made or `setup_wandb` runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from asynctune.integrations import wandb as _wandb
from asynctune.integrations._common import RESULT_FIELDS_NOT_LOGGED

from ..._unsupported import unsupported

# W&B settings that asynctune's callback takes as its own arguments rather than wandb.init's
_OWN_ARGUMENTS = ("entity", "mode", "dir")


class WandbLoggerCallback(_wandb.WandbLoggerCallback):
    """Log each trial as a W&B run (config, every reported metric at its step, status), as Ray's.

    Args:
        project: The W&B project (else $WANDB_PROJECT_NAME, as in Ray; one of them is required).
        group: The runs' group (else $WANDB_GROUP_NAME, else the experiment's name).
        api_key_file, api_key: Set as WANDB_API_KEY for this process, as Ray does (not saved with the
            experiment: set the variable yourself before `Tuner.restore`).
        excludes: Result keys not logged.
        log_config: Accepted for Ray's sake; the config is always logged when the run starts.
        upload_checkpoints, save_checkpoints: Not supported (True raises).
        upload_timeout, video_kwargs, image_kwargs: Accepted and not used.
        **kwargs: Passed on to `wandb.init` (`entity=`, `mode=`, `dir=`, `tags=`, ...).
    """

    def __init__(self, project: str | None = None, group: str | None = None, api_key_file: str | None = None,
                 api_key: str | None = None, excludes: Sequence[str] | None = None, log_config: bool = False,
                 upload_checkpoints: bool = False, save_checkpoints: bool = False, upload_timeout: int = 1800,
                 video_kwargs: dict | None = None, image_kwargs: dict | None = None, **kwargs: Any) -> None:
        if upload_checkpoints or save_checkpoints:
            unsupported("WandbLoggerCallback(upload_checkpoints/save_checkpoints=True)",
                        "checkpoints stay in the trial directories; log them with setup_wandb and run.log_artifact")
        project = project or os.environ.get("WANDB_PROJECT_NAME")
        if not project:
            raise ValueError("WandbLoggerCallback: project is required (or $WANDB_PROJECT_NAME), as in Ray")
        _set_api_key(api_key, api_key_file)
        own = {name: kwargs.pop(name) for name in _OWN_ARGUMENTS if name in kwargs}
        super().__init__(project, group=group or os.environ.get("WANDB_GROUP_NAME"),
                         exclude=RESULT_FIELDS_NOT_LOGGED | set(excludes or ()), **own, **kwargs)


def setup_wandb(config: Mapping[str, Any] | None = None, api_key: str | None = None,
                api_key_file: str | None = None, rank_zero_only: bool = True, **kwargs: Any) -> Any:
    """Start (or continue) this trial's W&B run in the trainable and return it, as Ray's.

    `kwargs` go to `wandb.init` (`project=`, `group=`, `mode=`, ...); the config is the run's config
    (without its "wandb" key). `rank_zero_only` does nothing (Tune trials have no ranks).

    Example:
        >>> def train(config):
        ...     run = setup_wandb(config, project="mnist", mode="offline")
        ...     run.log({"loss": 0.5})
        ...     run.finish()
    """
    _set_api_key(api_key, api_key_file)
    project = kwargs.pop("project", None) or os.environ.get("WANDB_PROJECT_NAME") or "asynctune"
    params = {k: v for k, v in (config or {}).items() if k != "wandb"}
    return _wandb.setup_wandb(params, project=project, group=kwargs.pop("group", None),
                              mode=kwargs.pop("mode", None), **kwargs)


def _set_api_key(api_key: str | None, api_key_file: str | None) -> None:
    if api_key_file is not None:
        with open(os.path.expanduser(api_key_file)) as f:
            api_key = f.readline().strip()
    if api_key:
        os.environ["WANDB_API_KEY"] = api_key
