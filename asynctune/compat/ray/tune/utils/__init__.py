"""Ray's `ray.tune.utils`: the mock trainable its examples use, and `validate_save_restore`."""

from __future__ import annotations

from typing import Any

from ..._unsupported import module_getattr


def validate_save_restore(trainable_cls: type, config: dict[str, Any] | None = None, num_gpus: int = 0) -> bool:
    """Check a class trainable's `save_checkpoint` / `load_checkpoint` before a run, as Ray's does:
    one instance trains 3 steps and saves, a second restores that and must go on at step 4.

    Example:
        >>> from asynctune.compat.ray.tune.utils import validate_save_restore
        >>> validate_save_restore(MyTrainableClass, config={"lr": 0.1})
        True

    Here both instances run in this process (`num_gpus` is accepted and unused)."""
    first, second = trainable_cls(config=config or {}), trainable_cls(config=config or {})
    try:
        for _ in range(3):
            result = first.train()
        checkpoint = first.save()
        second.restore(checkpoint)
        for expected in (4, 5):
            iteration = second.train()["training_iteration"]
            if iteration != expected:
                raise AssertionError(f"validate_save_restore: {trainable_cls.__name__} restored from step "
                                     f"{result['training_iteration']} trained step {iteration}, not {expected}")
    finally:
        first.stop()
        second.stop()
    return True


__getattr__ = module_getattr(__name__, {
    "wait_for_gpu": "asynctune places trials on free GPUs itself (docs/resources.md)",
    "diagnose_serialization": "asynctune names the object that cannot be pickled when run() starts",
})
