"""Syne Tune's own simulator against asynctune's, on the same recorded workload, in one run.

    python benchmarks/peer_synetune.py                       # mlp_digits, 4 workers, 5 seeds
    python benchmarks/peer_synetune.py --seeds 10 --workers 16

Both replay `benchmarks/workloads/<name>.json.gz` on a virtual clock with ASHA (stopping, grace
period 1, reduction factor 3, max_t = the table's epochs) and random configs, on the same number
of workers and the same budget of virtual seconds:

- Syne Tune 0.16: the table becomes a `BlackboxTabular` (one seed, the epochs as fidelity, the
  metric and the cumulative time per epoch as objectives) wrapped by `add_surrogate` with a
  1-nearest-neighbour regressor (Syne Tune's way to answer configs that are not in a table, as
  asynctune answers them with the nearest recorded config), run by `UserBlackboxBackend` with
  its `SimulatorCallback` (the Tuner's clock is virtual) and the `ASHA` baseline scheduler; and
  ASHA with 4 brackets (Syne Tune's asynchronous Hyperband).
- asynctune: `SimulatedExecutor` with `ASHAScheduler(variant="stopping")`, and with
  `brackets=4`.

It prints the best value by 25/50/100% of the budget (mean ± sd over seeds), the time to the
target, trials, results, wall seconds per run and wall µs per simulated result.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
import types
import warnings
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's asynctune, when run as a script
sys.path.insert(0, HERE)

from compare_schedulers import SCRATCH, Trace, _mean_sd, run_one  # noqa: E402

from asynctune.executors.simulated import Workload  # noqa: E402

DEFAULT_WORKLOAD = os.path.join(HERE, "workloads", "mlp_digits.json.gz")
ETA = 3
TIME_KEY = "elapsed_time"  # cumulative training time of a trial at an epoch (Syne Tune's elapsed_time_attr)


def _without_hub() -> None:
    """syne_tune.blackbox_repository imports huggingface_hub (to download its benchmark tables) at
    import time; a table built here needs no download, so a stand-in lets it import without it."""
    if "huggingface_hub" in sys.modules or importlib.util.find_spec("huggingface_hub") is not None:
        return

    def snapshot_download(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("huggingface_hub is not installed: Syne Tune's stored blackboxes cannot be downloaded")

    stub = types.ModuleType("huggingface_hub")
    stub.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    sys.modules["huggingface_hub"] = stub


def synetune_space(workload: Workload) -> dict[str, Any]:
    """The workload's search space as Syne Tune domains."""
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    space: dict[str, Any] = {}
    for key, spec in workload.space_spec.items():
        if spec["type"] == "float":
            space[key] = (loguniform if spec.get("log") else uniform)(spec["low"], spec["high"])
        elif spec["type"] == "int":
            space[key] = (lograndint if spec.get("log") else randint)(int(spec["low"]), int(spec["high"]))
        else:
            space[key] = choice(list(spec["values"]))
    return space


def synetune_blackbox(workload: Workload) -> Any:
    """The table as a Syne Tune tabular blackbox, answered anywhere by its nearest recorded config."""
    import pandas as pd
    from sklearn.neighbors import KNeighborsRegressor

    _without_hub()
    from syne_tune.blackbox_repository.blackbox_surrogate import add_surrogate
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular
    from syne_tune.config_space import randint

    metric = workload.metric
    values = workload.curves[metric]
    elapsed = np.cumsum(workload.epoch_time_s, axis=1)
    objectives = np.stack([values, elapsed], axis=-1)[:, None, :, :]  # (configs, seeds=1, epochs, objectives)
    space = synetune_space(workload)
    table = BlackboxTabular(
        hyperparameters=pd.DataFrame(workload.configs)[list(space)], configuration_space=space,
        fidelity_space={"epoch": randint(1, workload.max_epochs)}, objectives_evaluations=objectives,
        fidelity_values=np.arange(1, workload.max_epochs + 1), objectives_names=[metric, TIME_KEY])
    return add_surrogate(table, surrogate=KNeighborsRegressor(n_neighbors=1), configuration_space=space)


def run_synetune(brackets: int, seed: int, workload: Workload, blackbox: Any, workers: int, budget: float,
                 charge_decisions: bool = False, tick_s: float = 0.005) -> Trace:
    """Syne Tune's ASHA (brackets=1) or asynchronous Hyperband on its simulator backend.

    Its simulator has delays for a start, a result, a stop (0.05 s each by default): they are
    set to 0, as the table's epoch times already hold what a trial really took. It also adds
    the real time the Tuner spends between two calls to the virtual clock (the scheduler's
    decisions cost time); with epochs of 25-80 ms that time matters on a loaded machine, so by
    default it is not charged, as asynctune's simulation charges none (`charge_decisions`).
    When every worker is busy its clock moves in steps of `tuner_sleep_time` (5 s by default,
    longer than a whole training here): `tick_s`, 5 ms, a tenth of a typical epoch."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback

    _without_hub()
    from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
    from syne_tune.optimizer.baselines import ASHA

    class Backend(UserBlackboxBackend):
        def _advance_by_outside_time(self) -> None:
            if charge_decisions:
                super()._advance_by_outside_time()

    trace = Trace(f"synetune-{'asha' if brackets == 1 else 'hyperband'}{'-charged' if charge_decisions else ''}", seed)
    scratch = tempfile.mkdtemp(prefix="synetune-", dir=SCRATCH if os.path.isdir(SCRATCH) else None)
    old_home = os.environ.get("SYNETUNE_FOLDER")
    os.environ["SYNETUNE_FOLDER"] = scratch  # its results and tuner pickle go here, deleted after
    np.random.seed(seed)
    started = time.perf_counter()
    try:
        backend = Backend(blackbox=blackbox, elapsed_time_attr=TIME_KEY, seed=0,
                          simulator_config=SimulatorConfig(delay_on_trial_result=0, delay_complete_after_final_report=0,
                                                           delay_complete_after_stop=0, delay_start=0, delay_stop=0),
                          tuner_sleep_time=tick_s)
        scheduler = ASHA(config_space=synetune_space(workload), metric=workload.metric,
                         do_minimize=workload.mode == "min", time_attr="epoch", max_t=workload.max_epochs,
                         grace_period=1, reduction_factor=ETA, brackets=brackets, random_seed=seed)
        tuner = Tuner(trial_backend=backend, scheduler=scheduler, n_workers=workers, sleep_time=0,
                      stop_criterion=StoppingCriterion(max_wallclock_time=budget), callbacks=[SimulatorCallback()],
                      results_update_interval=1e9, print_update_interval=1e9, tuner_name=f"peer-{seed}",
                      save_tuner=False)
        tuner.run()
        frame = tuner.tuning_status.df if hasattr(tuner.tuning_status, "df") else None
        if frame is None:
            from syne_tune.experiments import load_experiment

            frame = load_experiment(tuner.name).results
        times = frame["st_tuner_time"].to_numpy(dtype=float)
        values = frame[workload.metric].to_numpy(dtype=float)
        order = np.argsort(times, kind="stable")
        trace.results = len(order)
        keep = [i for i in order if times[i] <= budget + 1e-9]
        trace.times = [float(times[i]) for i in keep]
        trace.values = [float(values[i]) for i in keep]
        trace.trials = int(frame["trial_id"].nunique())
    except Exception as exc:  # say what failed; the asynctune side still runs
        trace.error = f"{type(exc).__name__}: {exc}"
    finally:
        trace.wall_s = time.perf_counter() - started
        if old_home is None:
            os.environ.pop("SYNETUNE_FOLDER", None)
        else:
            os.environ["SYNETUNE_FOLDER"] = old_home
        shutil.rmtree(scratch, ignore_errors=True)
    return trace


def main(argv: list[str] | None = None) -> dict[str, list[Trace]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default=DEFAULT_WORKLOAD)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--budget", type=float, help="virtual seconds (default: 20 mean full trainings over the workers)")
    args = parser.parse_args(argv)

    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    workload = Workload.load(args.workload)
    max_t = workload.max_epochs
    full_training_s = float(workload.epoch_time_s.sum(axis=1).mean())
    budget = args.budget or 20 * full_training_s / args.workers
    finals = workload.curves[workload.metric][:, -1]
    target = float(np.quantile(finals, 0.02 if workload.mode == "min" else 0.98))
    print(f"# {workload.name}: {args.workers} workers, budget {budget:.3g} virtual s, {args.seeds} seeds, "
          f"target {workload.metric} {target:.4g}\n")

    blackbox = synetune_blackbox(workload)
    traces: dict[str, list[Trace]] = {}
    for seed in range(args.seeds):
        for brackets, charged in ((1, False), (4, False), (1, True)):
            trace = run_synetune(brackets, seed, workload, blackbox, args.workers, budget, charged)
            traces.setdefault(trace.method, []).append(trace)
        for method in ("asha-stop", "asha-brackets"):
            trace = run_one(method, seed, args.workload, args.workers, budget, False, max_t)
            traces.setdefault(trace.method, []).append(trace)

    labels = {"synetune-asha": "Syne Tune 0.16 ASHA", "synetune-hyperband": "Syne Tune 0.16 ASHA, 4 brackets",
              "synetune-asha-charged": "Syne Tune 0.16 ASHA, its decision time charged to the clock",
              "asha-stop": "asynctune ASHA (stopping)", "asha-brackets": "asynctune ASHA, 4 brackets"}
    print("| simulator, scheduler | best @25% | best @50% | best @100% | time to target | trials | results "
          "| wall s/run | µs/result |\n|---|---|---|---|---|---|---|---|---|")
    for method, runs in traces.items():
        errors = sorted({r.error for r in runs if r.error})
        if errors:
            print(f"| {labels[method]} | failed: {'; '.join(errors)[:200]} |||||||| ")
            continue
        cells = [labels[method]]
        cells += [_mean_sd(np.array([r.best_by(f * budget, workload.mode) for r in runs])) for f in (0.25, 0.5, 1.0)]
        times = np.array([r.time_to(target, workload.mode) for r in runs])
        reached = int(np.isfinite(times).sum())
        cells.append(f"{np.median(times):.3g} virtual s ({reached}/{len(runs)})" if reached * 2 > len(runs)
                     else f"not reached ({reached}/{len(runs)})")
        results = sum(r.results for r in runs)
        cells += [f"{np.mean([r.trials for r in runs]):.0f}", f"{results / len(runs):.0f}",
                  f"{np.mean([r.wall_s for r in runs]):.2f}", f"{1e6 * sum(r.wall_s for r in runs) / max(results, 1):.0f}"]
        print("| " + " | ".join(cells) + " |")
    return traces


if __name__ == "__main__":
    try:
        import syne_tune  # noqa: F401
    except ImportError:
        raise SystemExit("peer_synetune.py needs Syne Tune: pip install syne-tune") from None
    main()
