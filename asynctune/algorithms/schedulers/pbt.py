"""Population based training (Jaderberg et al., "Population Based Training of Neural Networks", 2017)."""

from __future__ import annotations

import copy
import logging
import math
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.space import Categorical, Domain, Float, Function, Grid, Integer, Normal, _native, choice, sample_from
from ...core.objectives import as_float
from ...core.trial import CONTINUE, PAUSE, Decision, Mutate, Status, Trial
from .rungs import check_non_negative, check_positive, check_time_attr, require_metric_and_mode, score
from ..base import Scheduler, scheduler_seed

logger = logging.getLogger(__name__)

Mutation = Domain | Sequence[Any] | Callable[[], Any] | Mapping[str, Any]


class PopulationBasedTraining(Scheduler):
    """Train a population; every so often the worst copy the best and perturb their hyperparameters.

    Jaderberg et al. (2017), asynchronous form as in Ray Tune: each time a trial has trained
    another `perturbation_interval` of `time_attr` ("ready"), it is ranked by its latest result
    among all trials. If it is in the bottom `quantile_fraction`, it *exploits*: it clones the
    latest checkpoint of a trial drawn from the top `quantile_fraction` and continues from it
    with that trial's config, *explored*: each hyperparameter in `hyperparam_mutations` is
    resampled with probability `resample_probability`, otherwise perturbed (a number is
    multiplied by one of `perturbation_factors`, a list value moves to a neighbouring entry).
    The decision is `Mutate(new_config, donor.checkpoint)`.

    The population trains together, as in the paper and Ray Tune: when it is larger than the
    workers, a trial that reaches the end of a perturbation interval *pauses* (checkpoints and
    frees its worker) while other trials wait to run or are still to be created, and the
    waiting trial with the least progress runs next (`choose_trial_to_run`). So every member
    trains one interval at a time, in turns, and exploits donors at the same stage of training.
    Trials that have ended (their `stop=` reached, or failed) leave the ranking: they are no
    donors, so no trial is cloned past its stop criterion.

    Each exploit appends a record to `trial.lineage` (the step, donor trial id, old, donor and
    new config), so the schedule of hyperparameters that produced the best trial can be read
    back and replayed. Rankings are kept sorted: a decision costs O(log n) in the population.

    Example:
        >>> PopulationBasedTraining(
        ...     metric="loss", mode="min", perturbation_interval=5,
        ...     hyperparam_mutations={"lr": loguniform(1e-4, 1e-1), "batch_size": [16, 32, 64]},
        ...     seed=0)

    Args:
        time_attr: The result field that measures progress; perturbations are this far apart.
        metric: The result field to optimise; run()'s metric when None.
        mode: "min" or "max"; run()'s mode when None.
        perturbation_interval: How much `time_attr` a trial trains between two chances to
            exploit and explore. Trials should checkpoint at least this often.
        burn_in_period: No perturbation before this much `time_attr`.
        hyperparam_mutations: {key: how to explore it}: a search-space domain (uniform,
            loguniform, randint, choice, ...), a list of values (perturbation moves to a
            neighbour), a callable returning a fresh value, or a nested dict of these for
            nested configs. A key that run()'s `config` lacks is sampled from its mutation
            for each trial, as Ray Tune does.
        quantile_fraction: The share of the population in the top (donors) and in the bottom
            (exploiters) quantiles; at most 0.5, and 0 for no exploitation at all (as Ray Tune).
        resample_probability: Chance to resample a value from its mutation instead of
            perturbing it.
        perturbation_factors: The factors a numeric value is multiplied by (one at random).
        custom_explore_fn: Called with the explored config; returns the config to use. Alone
            (without hyperparam_mutations) it is the whole explore step.
        seed: Seeds donor choice and exploration, so a run with the same results is repeatable.
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, perturbation_interval: float = 10, burn_in_period: float = 0,
                 hyperparam_mutations: Mapping[str, Mutation] | None = None,
                 quantile_fraction: float = 0.25, resample_probability: float = 0.25,
                 perturbation_factors: tuple[float, float] = (1.2, 0.8),
                 custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 *, seed: int | None = None) -> None:
        check_time_attr(time_attr)
        check_positive("perturbation_interval", perturbation_interval)
        check_non_negative("burn_in_period", burn_in_period)
        if hyperparam_mutations is None:
            hyperparam_mutations = {}
        if not isinstance(hyperparam_mutations, Mapping):
            raise ValueError(f"hyperparam_mutations must be a dict, got {hyperparam_mutations=}")
        _check_mutations(hyperparam_mutations, ())
        if not hyperparam_mutations and custom_explore_fn is None:
            raise ValueError("PopulationBasedTraining needs hyperparam_mutations or custom_explore_fn "
                             "(what to change when a trial exploits another), got neither")
        if custom_explore_fn is not None and not callable(custom_explore_fn):
            raise ValueError(f"custom_explore_fn must be callable, got {custom_explore_fn=}")
        if isinstance(quantile_fraction, bool) or not isinstance(quantile_fraction, (int, float)) \
                or not 0 <= quantile_fraction <= 0.5:
            raise ValueError(f"quantile_fraction must be in [0, 0.5] (0: no exploitation), got {quantile_fraction=}")
        if not isinstance(resample_probability, (int, float)) or not 0 <= resample_probability <= 1:
            raise ValueError(f"resample_probability must be in [0, 1], got {resample_probability=}")
        if not isinstance(perturbation_factors, (list, tuple)) or not perturbation_factors or not all(
                isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < math.inf
                for f in perturbation_factors):
            raise ValueError(f"perturbation_factors must be a list or tuple of positive finite numbers, got "
                             f"{perturbation_factors=}")
        super().__init__(metric, mode)
        self.time_attr = time_attr
        self.perturbation_interval, self.burn_in_period = perturbation_interval, burn_in_period
        self.hyperparam_mutations = dict(hyperparam_mutations)
        self.quantile_fraction, self.resample_probability = quantile_fraction, resample_probability
        self.perturbation_factors = tuple(perturbation_factors)
        self.custom_explore_fn = custom_explore_fn
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._state: dict[str, _TrialState] = {}
        self._ranked: list[tuple[float, int]] = []  # (latest score, order) of every ranked trial, sorted
        self._trial_of: dict[tuple[float, int], Trial] = {}
        self._more_trials_coming = True  # until the searcher is finished: the population is not all there

    def set_seed(self, seed: int | None) -> None:
        if self.seed is None and seed is not None:
            self.seed = seed
            self._rng = np.random.default_rng(scheduler_seed(seed))

    def validate(self) -> None:
        require_metric_and_mode(type(self).__name__, self.metric, self.mode)

    def complete_search_space(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """run()'s config with every key of hyperparam_mutations it lacks, sampled from its mutation."""
        return _with_mutated_keys(config, self.hyperparam_mutations)

    def on_trial_add(self, trial: Trial) -> None:
        _check_keys_exist(self.hyperparam_mutations, trial.config, trial.trial_id)
        self._state[trial.trial_id] = _TrialState(order=len(self._state))

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> Decision | Mutate:
        time = as_float(result.get(self.time_attr))
        if time is None or self.metric not in result:
            return CONTINUE
        if trial.ending:
            return CONTINUE  # its last result (stop=, the experiment's end): an exploit would never run
        if trial.trial_id not in self._state:
            self.on_trial_add(trial)
        state = self._state[trial.trial_id]
        state.progress = max(state.progress, time)
        if trial.checkpoint != state.checkpoint:  # it came with this result
            state.checkpoint, state.checkpoint_time = trial.checkpoint, time
        turn_over = time - state.last_turn >= self.perturbation_interval
        ready = time >= self.burn_in_period and time - state.last_perturbation >= self.perturbation_interval
        if not (turn_over or ready):
            return CONTINUE
        state.last_turn = time  # an interval trained: its turn on the worker ends if others wait
        if ready:
            state.last_perturbation = time
            exploit = self._exploit_or_continue(trial, time, result)
            if exploit is not None:
                return exploit
        return PAUSE if self._others_wait(trial) else CONTINUE

    def on_trial_complete(self, trial: Trial, result: dict[str, Any] | None) -> None:
        self._unrank(trial)  # an ended trial is no donor: its checkpoint is past its stop criterion

    def on_trial_error(self, trial: Trial) -> None:
        self._unrank(trial)

    def on_searcher_finished(self) -> None:
        self._more_trials_coming = False

    def choose_trial_to_run(self, candidates: Sequence[Trial]) -> Trial | None:
        """Time-sharing: the waiting trial (pending or paused) with the least progress; the oldest on a tie."""
        if not candidates:
            return None
        return min(candidates, key=lambda t: (self._progress(t), t.index))

    # The paper's steps -------------------------------------------------------------------------

    def _exploit_or_continue(self, trial: Trial, time: float, result: dict[str, Any]) -> Decision | Mutate | None:
        """Rank the trial; in the bottom quantile, clone a top trial (None: it just continues)."""
        self._rank(trial, score(result[self.metric], self.mode))
        lower, upper = self._quantile_sizes()
        if self._position(trial) >= lower:
            return None  # not in the bottom quantile: keep training
        donor = self._pick_donor(upper)
        if donor is None or donor.checkpoint is None:
            logger.info("PBT: %s is in the bottom quantile but no top trial has a checkpoint to clone yet",
                        trial.trial_id)
            return None
        return self._exploit(trial, donor, time, result)

    def _others_wait(self, trial: Trial) -> bool:
        """Must this trial yield its worker? Yes while other members wait to run or are yet to be created."""
        if self._more_trials_coming:
            return True
        trials = self.control.trials if self.control is not None else ()
        return any(t is not trial and t.status in (Status.PENDING, Status.PAUSED) for t in trials)

    def _progress(self, trial: Trial) -> float:
        state = self._state.get(trial.trial_id)
        return state.progress if state is not None else 0.0

    def _rank(self, trial: Trial, value: float) -> None:
        """Replace the trial's entry in the ranking by its latest score."""
        self._unrank(trial)
        state = self._state[trial.trial_id]
        state.key = (value, -state.order)  # on a tie, the older trial ranks higher
        insort(self._ranked, state.key)
        self._trial_of[state.key] = trial

    def _unrank(self, trial: Trial) -> None:
        state = self._state.get(trial.trial_id)
        if state is not None and state.key is not None:
            del self._ranked[bisect_left(self._ranked, state.key)]
            del self._trial_of[state.key]
            state.key = None

    def _quantile_sizes(self) -> tuple[int, int]:
        """How many trials are in the bottom and in the top quantile (the same number)."""
        n = len(self._ranked)
        if n <= 1:
            return 0, 0
        size = min(math.ceil(n * self.quantile_fraction), n // 2)
        return size, size

    def _position(self, trial: Trial) -> int:
        """0 for the worst ranked trial."""
        return bisect_left(self._ranked, self._state[trial.trial_id].key)

    def _pick_donor(self, upper: int) -> Trial | None:
        """A trial of the top quantile at random; not one whose last result is in (it is ending)."""
        top = [self._trial_of[key] for key in self._ranked[len(self._ranked) - upper:][::-1]]
        donors = [t for t in top if not t.ending]
        if not donors:
            return None
        return donors[int(self._rng.integers(len(donors)))]

    def _exploit(self, trial: Trial, donor: Trial, time: float, result: dict[str, Any]) -> Decision | Mutate:
        state, donor_state = self._state[trial.trial_id], self._state[donor.trial_id]
        replayed = trial.lineage[state.exploits] if state.exploits < len(trial.lineage) else None
        state.exploits += 1
        if replayed is not None and replayed.get(self.time_attr) == result[self.time_attr]:
            # A resume replays the recorded history: recorded already, and the donor has moved on since.
            new_config = replayed["new_config"]
            restarts_at = replayed.get("restarts_at", max(time, donor_state.last_perturbation))
        else:
            new_config = self._explore(donor.config)
            restarts_at = self._checkpoint_time(donor, donor_state)
            trial.lineage.append({
                "training_iteration": result.get("training_iteration"),
                self.time_attr: result[self.time_attr],
                "donor": donor.trial_id,
                "donor_checkpoint": donor.checkpoint,
                "restarts_at": restarts_at,
                "old_config": copy.deepcopy(trial.config),
                "donor_config": copy.deepcopy(donor.config),
                "new_config": copy.deepcopy(new_config),
            })
        # The clone goes on from the donor's checkpoint, on its clock: its next chance comes an
        # interval after that point (the trial's own time before the clone no longer counts).
        state.last_perturbation = state.last_turn = state.progress = restarts_at
        if self._others_wait(trial) and self.control is not None:
            # Its turn ends here too: it pauses and waits, ready to run as the clone (as in Ray Tune).
            self.control.resume_trial(trial, config=new_config, checkpoint=donor.checkpoint)
            return PAUSE
        return Mutate(new_config, donor.checkpoint)

    def _checkpoint_time(self, donor: Trial, donor_state: _TrialState) -> float:
        """The donor's checkpoint's `time_attr` value: the controller knows it for iterations and
        seconds; for another field, the value of the result it came with."""
        if self.time_attr == "training_iteration" and donor.checkpoint_iteration > 0:
            return float(donor.checkpoint_iteration)
        if self.time_attr == "time_total_s" and donor.checkpoint_time_total > 0:
            return donor.checkpoint_time_total
        if donor.checkpoint == donor_state.checkpoint:
            return donor_state.checkpoint_time
        return donor_state.last_perturbation  # a checkpoint written as it paused: after its last perturbation

    def _explore(self, config: dict[str, Any]) -> dict[str, Any]:
        new_config = copy.deepcopy(config)
        _perturb(new_config, self.hyperparam_mutations, self._rng, self.resample_probability,
                 self.perturbation_factors)
        if self.custom_explore_fn is not None:
            new_config = self.custom_explore_fn(new_config)
            if not isinstance(new_config, dict):
                raise TypeError(f"custom_explore_fn must return the new config dict, got {new_config!r}")
        return new_config


@dataclass
class _TrialState:
    order: int
    last_perturbation: float = 0.0
    last_turn: float = 0.0  # where its latest turn on a worker ended (time-sharing)
    progress: float = 0.0  # its latest time_attr: who has trained least runs next
    exploits: int = 0  # how many exploits were decided for it (a resume replays trial.lineage's)
    checkpoint: str | None = None  # its checkpoint as last seen with a result, and that result's time
    checkpoint_time: float = 0.0
    key: tuple[float, int] | None = None


def _perturb(config: dict[str, Any], mutations: Mapping[str, Mutation], rng: np.random.Generator,
             resample_probability: float, factors: tuple[float, ...]) -> None:
    """Explore in place: resample each mutated value, or perturb it."""
    for key, mutation in mutations.items():
        if isinstance(mutation, Mapping):
            _perturb(config[key], mutation, rng, resample_probability, factors)
            continue
        resample = rng.random() < resample_probability
        config[key] = _new_value(config[key], mutation, resample, rng, factors)


def _new_value(old: Any, mutation: Mutation, resample: bool, rng: np.random.Generator,
               factors: tuple[float, ...]) -> Any:
    if isinstance(mutation, Categorical):
        mutation = mutation.categories
    if isinstance(mutation, Domain):
        if resample:
            return _native(mutation.sample(rng))
        return _scaled(old, mutation, factors[int(rng.integers(len(factors)))])
    if callable(mutation):
        if resample or not isinstance(old, (int, float)) or isinstance(old, bool):
            return mutation()
        factor = factors[int(rng.integers(len(factors)))]
        return int(old * factor) if isinstance(old, int) else old * factor
    values = list(mutation)
    if resample or old not in values:
        return copy.deepcopy(values[int(rng.integers(len(values)))])
    shift = -1 if rng.random() < 0.5 else 1  # to a neighbouring value, staying inside the list
    return copy.deepcopy(values[min(max(values.index(old) + shift, 0), len(values) - 1)])


def _scaled(old: Any, domain: Domain, factor: float) -> Any:
    """Multiply a value by a perturbation factor, keep it inside its domain's bounds."""
    if isinstance(domain, Float):
        return domain.quantize(min(max(float(old) * factor, domain.low), domain.high))
    if isinstance(domain, Integer):
        return domain.quantize(min(max(int(old * factor), domain.low), domain.high))
    if isinstance(domain, Normal):
        value = float(old) * factor
        return round(value / domain.q) * domain.q if domain.q is not None else value
    return old


def _check_mutations(mutations: Mapping[str, Any], path: tuple[str, ...]) -> None:
    for key, mutation in mutations.items():
        where = "".join(f"[{k!r}]" for k in (*path, key))
        if isinstance(mutation, (Grid, Function)):
            raise ValueError(f"hyperparam_mutations{where}: {mutation!r} cannot be sampled alone; "
                             "use a domain (uniform, choice, ...), a list or a callable")
        if isinstance(mutation, Mapping):
            _check_mutations(mutation, (*path, key))
        elif isinstance(mutation, Domain) or callable(mutation):
            continue
        elif isinstance(mutation, (list, tuple)):
            if not mutation:
                raise ValueError(f"hyperparam_mutations{where}: the list of values is empty")
        else:
            raise ValueError(f"hyperparam_mutations{where}: expected a domain, a list, a callable or a dict, "
                             f"got {mutation!r}")


def _with_mutated_keys(config: Mapping[str, Any], mutations: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` where each mutated key it lacks is a domain to sample (nested dicts too)."""
    filled = dict(config)
    for key, mutation in mutations.items():
        if isinstance(mutation, Mapping):
            inner = filled.get(key, {})
            if isinstance(inner, Mapping):
                filled[key] = _with_mutated_keys(inner, mutation)
        elif key not in filled:
            filled[key] = _as_domain(mutation)
    return filled


def _as_domain(mutation: Any) -> Domain:
    if isinstance(mutation, Domain):
        return mutation
    if callable(mutation):
        return sample_from(lambda _config, fn=mutation: fn())
    return choice(list(mutation))


def _check_keys_exist(mutations: Mapping[str, Any], config: Any, trial_id: str,
                      path: tuple[str, ...] = ()) -> None:
    for key, mutation in mutations.items():
        if not isinstance(config, Mapping) or key not in config:
            where = "".join(f"[{k!r}]" for k in (*path, key))
            raise ValueError(f"hyperparam_mutations{where} is not in the config of trial {trial_id}: "
                             "PBT can only mutate hyperparameters every trial has")
        if isinstance(mutation, Mapping):
            _check_keys_exist(mutation, config[key], trial_id, (*path, key))
