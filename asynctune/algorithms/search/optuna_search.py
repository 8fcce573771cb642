"""Any Optuna sampler as an asynctune searcher, through Optuna's ask-and-tell interface.

Each suggestion is `study.ask()` followed by the search space's `trial.suggest_*` calls, define
by run, so a parameter inside a `choice` of dicts is suggested only when its branch is chosen.
Intermediate results reach the Optuna trial (`trial.report`), and a trial's end is told as
COMPLETE (it finished), PRUNED (the scheduler stopped it early, Optuna's own word for that) or
FAIL (it errored or never reported the metric). Several trials may be asked for before any is
told: samplers see the running ones as RUNNING (Optuna's TPE lies about them, "constant liar").

In an experiment the study lives in the experiment directory, in Optuna's own journal file
storage (optuna_journal.log), written as each trial is asked for and told: a resumed
experiment continues the same study, whatever its sampler can or cannot pickle.
searcher_state.pkl keeps the rest (which asynctune trial is which Optuna trial, and the
sampler with its random state, its thread locks left out).

Optuna (Akiba et al., 2019) is an optional extra: `pip install "asynctune[optuna]"`.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import cloudpickle
import numpy as np

from ...errors import ExperimentDamaged, SearchSpaceError
from ...store.layout import move_torn_tail
from ...store.names import SEARCHER_STATE_FILE, optuna_journal_file
from ...core.space import Categorical, Float, Function, Integer, Parameter, Path, Space, format_path
from ..base import FINISHED, Metric, Mode, Searcher
from .model_based import check_point_keys, is_active, searchable_parameters, values_from_point

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "asynctune[optuna]"'

# Sampler names OptunaSearch builds itself, seeded (with the experiment's seed when none is given).
SAMPLERS = {
    "tpe": "TPESampler", "cmaes": "CmaEsSampler", "gp": "GPSampler", "nsga2": "NSGAIISampler",
    "nsga3": "NSGAIIISampler", "qmc": "QMCSampler", "random": "RandomSampler",
}

# Samplers that import a package only after their startup trials: checked before the first trial.
_NEEDS = {"CmaEsSampler": ("cmaes", 'pip install "asynctune[optuna]" (or cmaes)'),
          "GPSampler": ("torch", "pip install torch")}

STUDY_NAME = "asynctune"
Values = dict[Path, Any]  # {parameter path: value}; a choice holds its category index
DefineByRun = Callable[[Any], "Mapping[str, Any] | None"]


class OptunaSearch(Searcher):
    """Search with any Optuna sampler: TPE, CMA-ES, Gaussian process, NSGA-II/III, QMC, random.

    The search space of `run(config=...)` becomes Optuna distributions (see docs/searchers.md
    for the table): log domains stay log, integers stay integers, quantized domains keep their
    step, and conditional spaces (a `choice` of dicts) are suggested define-by-run. `randn` and
    `grid_search` have no Optuna counterpart and are refused before any trial starts. Or pass
    `space=`, an Optuna define-by-run function, and keep only constants in `run(config=...)`.

    With several metrics (`metric=["error", "latency"], mode=["min", "min"]`) the study has one
    direction per metric (multi-objective: NSGA-II, TPE, GP). Intermediate results are
    reported to single-objective studies; a trial the scheduler stopped early (ASHA, ...) is
    told PRUNED with its last reported value, which Optuna's TPE ranks below finished trials.

    Example:
        >>> run(train, config={"lr": loguniform(1e-4, 1e-1), "layers": randint(1, 5)},
        ...     num_samples=50, scheduler=ASHAScheduler(max_t=27),
        ...     search_alg=OptunaSearch(sampler="tpe", metric="loss", mode="min", seed=0))

    Args:
        sampler: An Optuna sampler instance (it keeps its own seed), or the name of one that
            OptunaSearch builds with `seed`: "tpe" (the default), "cmaes", "gp", "nsga2",
            "nsga3", "qmc" or "random"; `sampler_kwargs` go to its constructor.
        space: An Optuna define-by-run function `space(trial) -> dict | None` that calls
            `trial.suggest_*`; the config is its suggested params, updated with the dict it
            returns (constants) and laid over the constants of `run(config=...)`. Or a dict
            of Optuna distributions, `{"lr": FloatDistribution(1e-4, 1e-1, log=True)}`. As in
            Ray, either may come first: `OptunaSearch(space_fn, metric="loss", mode="min")`.
        metric: The result key to optimise, or a list of keys (multi-objective); run()'s
            metric is used when None.
        mode: "min" or "max", or one per metric (one string: the same for all); run()'s mode
            is used when None.
        seed: Seeds the sampler OptunaSearch builds from a name (run()'s seed when None), and
            sample_from draws.
        sampler_kwargs: Passed to the named sampler's constructor, e.g. {"n_startup_trials": 5}.
        points_to_evaluate: Configs (possibly partial) to try first, enqueued in the study
            (`study.enqueue_trial`); the parameters they leave out are suggested by the sampler.
            With `space=`, give them as the function's parameter names and values; each is
            run through the function before any trial, so a name it does not suggest or a
            value outside its distribution is an error then.
    """

    multi_objective = True
    slow = True  # a GP or TPE ask with hundreds of trials takes a while: the controller uses a thread

    def __init__(self, sampler: Any = None, space: DefineByRun | None = None,
                 metric: Metric | None = None, mode: Mode | None = None,
                 seed: int | None = None, *, sampler_kwargs: Mapping[str, Any] | None = None,
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None) -> None:
        ot = _import_optuna()
        if space is None and (_is_distributions(sampler) or (
                callable(sampler) and not isinstance(sampler, ot.samplers.BaseSampler))):
            sampler, space = None, sampler  # Ray's OptunaSearch(space, ...): no sampler is either of those
        if isinstance(sampler, str):
            if sampler not in SAMPLERS:
                raise ValueError(f"OptunaSearch: sampler must be an Optuna sampler or one of {sorted(SAMPLERS)}, "
                                 f"got {sampler=}")
        elif sampler is not None and not isinstance(sampler, ot.samplers.BaseSampler):
            raise ValueError(f"OptunaSearch: sampler must be an Optuna sampler or one of {sorted(SAMPLERS)}, "
                             f"got {sampler!r}")
        if sampler_kwargs and not (sampler is None or isinstance(sampler, str)):
            raise ValueError("OptunaSearch: sampler_kwargs go to a sampler named by a string; "
                             "pass them to your sampler's constructor instead")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"OptunaSearch: seed must be an integer or None, got {seed=}")
        if seed is not None and sampler is not None and not isinstance(sampler, str):
            raise ValueError("OptunaSearch: seed= seeds a sampler OptunaSearch builds; a sampler instance keeps "
                             f"its own: pass seed to {type(sampler).__name__}(seed=...) instead")
        if _is_distributions(space):
            space = _DistributionsSpace(space)  # Ray's OptunaSearch takes such a dict too
        if space is not None and not callable(space):
            raise ValueError("OptunaSearch: space must be a define-by-run function space(trial) or a dict of Optuna "
                             f"distributions, got {space!r}")
        if points_to_evaluate is not None and (isinstance(points_to_evaluate, Mapping) or not all(
                isinstance(p, Mapping) for p in points_to_evaluate)):
            raise ValueError(f"OptunaSearch: points_to_evaluate must be a list of dicts, got {points_to_evaluate!r}")
        super().__init__(metric, mode)  # several metrics: lists (multi_objective below)
        self.seed = seed
        self.sampler, self.define_by_run = sampler, space
        self.points_to_evaluate = [dict(p) for p in points_to_evaluate or []]
        self.sampler_kwargs = dict(sampler_kwargs or {})
        self.study: optuna.Study | None = None  # created by set_search_properties
        self._params: list[Parameter] = []
        self._live: dict[str, optuna.trial.Trial] = {}  # asked for, not yet told
        self._last_step: dict[str, int] = {}  # the newest step reported per live trial
        self._latest: dict[str, list[float]] = {}  # the newest values of all metrics per live trial
        self._asked = 0
        self._stopped = False  # the sampler stopped the study (GridSampler: every point has run)
        self._journal: str | None = None  # the study's file, once set_experiment_dir gave one

    # Setup --------------------------------------------------------------------------------------

    def set_search_properties(self, metric: Metric | None, mode: Mode | None,
                              space: Space, *, seed: int | None = None) -> None:
        super().set_search_properties(metric, mode, space, seed=seed)
        if self.metric is None or self.mode is None:
            missing = "metric" if self.metric is None else "mode"
            raise ValueError(f"OptunaSearch: {missing} is not set; pass {missing}= here or to run()")
        self._metrics = [self.metric] if isinstance(self.metric, str) else list(self.metric)
        self._modes = [self.mode] * len(self._metrics) if isinstance(self.mode, str) else list(self.mode)
        if self.define_by_run is not None:
            domains = [format_path(p.path) for p in space.parameters if not isinstance(p.domain, Function)]
            domains += [format_path(path) for path, _ in space.grid]
            if domains:
                raise SearchSpaceError(
                    f"OptunaSearch(space=...) defines the search space; run(config=...) may then hold only "
                    f"constants and sample_from, but has domains at {', '.join(domains)}")
        else:
            self._params = searchable_parameters(space)
            _check_domains(space, self._params)
            check_point_keys(space, self.points_to_evaluate, owner="OptunaSearch")
        enqueued = [self._optuna_params(point) for point in self.points_to_evaluate]  # fail now if one is bad
        self.study = self._create_study(self._make_sampler())
        _check_sampler_needs(self.study.sampler)
        self._probe()
        for params in enqueued:
            self.study.enqueue_trial(params)

    def set_experiment_dir(self, path: str) -> None:
        """Keep the study in `path`/optuna_journal.log (Optuna's journal file storage): a new one
        now, or on resume the one the first run wrote, with every trial asked and told."""
        if self.study is None:
            raise RuntimeError("OptunaSearch.set_experiment_dir called before set_search_properties")
        ot = _import_optuna()
        self._journal = optuna_journal_file(path)
        # A driver killed (or a disk filled) mid-append leaves a torn last line, onto which
        # Optuna would glue its next one: the study could not be read again after that.
        move_torn_tail(self._journal)
        # Optuna's lock file, left by a driver killed while Optuna held it, would stall this one
        # for 30 s: it is stale, since only the driver (which holds driver.lock) writes the study.
        try:
            os.unlink(self._journal + _OPTUNA_LOCK_SUFFIX)
        except FileNotFoundError:
            pass
        os.close(os.open(self._journal, os.O_WRONLY | os.O_CREAT, 0o600))  # private before Optuna appends
        storage = _open_journal(self._journal)
        verbosity = ot.logging.get_verbosity()
        ot.logging.set_verbosity(ot.logging.WARNING)
        try:
            if STUDY_NAME in ot.get_all_study_names(storage):  # a resume: the same study goes on
                self.study = ot.load_study(study_name=STUDY_NAME, storage=storage, sampler=self.study.sampler)
                return
            directions = ["minimize" if m == "min" else "maximize" for m in self._modes]
            self.study = ot.create_study(study_name=STUDY_NAME, storage=storage, sampler=self.study.sampler,
                                         directions=directions)
        finally:
            ot.logging.set_verbosity(verbosity)
        for point in self.points_to_evaluate:
            self.study.enqueue_trial(self._optuna_params(point))

    def save(self, path: str) -> None:
        """What the journal does not hold: which trial is which, and the sampler's own state."""
        with open(path, "wb") as f:
            cloudpickle.dump(self.__getstate__(), f)

    def restore(self, path: str) -> None:
        with open(path, "rb") as f:
            state = cloudpickle.load(f)
        if state.get("study") is not None:  # written before the study had a journal: it is all here
            self.__dict__.update(state)
            return
        if self.study is None or self._journal is None:
            raise RuntimeError("OptunaSearch.restore needs the study's journal: call set_experiment_dir first")
        study, journal = self.study, self._journal
        self.__dict__.update(state)
        self.study, self._journal = study, journal
        if state.get("_study_sampler") is not None:
            study.sampler = state["_study_sampler"]  # its random state goes on: no config proposed twice
        storage, study_id = study._storage, study._study_id
        self._live = {trial_id: _import_optuna().trial.Trial(
            study, storage.get_trial_id_from_study_id_trial_number(study_id, number))
            for trial_id, number in state["_live"].items()}

    def __getstate__(self) -> dict[str, Any]:
        """Picklable whatever the sampler: its thread locks travel as new locks, the study (in
        its journal) as nothing, running trials as their numbers. Without a journal (used
        outside an experiment) the study travels in the pickle, as it always did."""
        state = dict(self.__dict__)
        state["sampler"] = _without_locks(self.sampler)
        if self._journal is None:
            return state
        state["_study_sampler"] = _without_locks(self.study.sampler) if self.study is not None else None
        state["study"] = None
        state["_live"] = {trial_id: trial.number for trial_id, trial in self._live.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("_study_sampler", None)
        if state.get("study") is None:
            state["_live"] = {}  # restore() maps them back, once there is a study
        self.__dict__.update(state)

    def _make_sampler(self) -> Any:
        ot = _import_optuna()
        if self.sampler is not None and not isinstance(self.sampler, str):
            return self.sampler
        cls = getattr(ot.samplers, SAMPLERS[self.sampler or "tpe"])
        try:
            return cls(seed=self.seed, **self.sampler_kwargs)
        except TypeError as exc:
            raise ValueError(f"OptunaSearch: sampler_kwargs {self.sampler_kwargs} do not fit {cls.__name__}: {exc}") from exc

    def _create_study(self, sampler: Any) -> optuna.Study:
        ot = _import_optuna()
        directions = ["minimize" if m == "min" else "maximize" for m in self._modes]
        verbosity = ot.logging.get_verbosity()
        ot.logging.set_verbosity(ot.logging.WARNING)  # no "A new study created in memory" on stderr
        try:
            return ot.create_study(sampler=sampler, directions=directions)
        finally:
            ot.logging.set_verbosity(verbosity)

    def _probe(self) -> None:
        """Ask one trial of a throwaway study (a copy of the sampler): a space function that
        raises or returns something else than a dict, or a sampler that cannot handle this study
        (CMA-ES with several objectives), fails now, before any trial."""
        assert self.study is not None
        try:
            sampler = copy.deepcopy(self.study.sampler)
        except Exception:  # noqa: BLE001  a sampler that cannot be copied: check the space alone
            sampler = _import_optuna().samplers.RandomSampler(seed=0)
        probe = self._create_study(sampler)
        try:
            self._suggest_config(probe.ask(), np.random.default_rng(0))
        except SearchSpaceError:
            raise
        except Exception as exc:
            raise ValueError(f"OptunaSearch with {type(sampler).__name__} cannot suggest for this study: "
                             f"{type(exc).__name__}: {exc}") from exc
        if self.define_by_run is not None:
            self._probe_points(probe)

    def _probe_points(self, probe: optuna.Study) -> None:
        """Run the space function on each point to evaluate: a name it does not suggest, or a
        value outside its distribution, fails now (Optuna would only warn, and run the value)."""
        ot = _import_optuna()
        verbosity = ot.logging.get_verbosity()
        ot.logging.set_verbosity(ot.logging.ERROR)  # our error replaces Optuna's "out of range" warning
        try:
            for index, point in enumerate(self.points_to_evaluate):
                probe.enqueue_trial(dict(point))
                trial = probe.ask()
                try:
                    self._suggest_config(trial, np.random.default_rng(0))
                except (ValueError, TypeError) as exc:  # a category that is none of the choices
                    raise ValueError(f"OptunaSearch: points_to_evaluate[{index}] {point!r} does not fit the space "
                                     f"function: {exc}") from exc
                for name, value in point.items():
                    where = f"OptunaSearch: points_to_evaluate[{index}] sets {name!r}"
                    distribution = trial.distributions.get(name)
                    if distribution is None:
                        raise ValueError(f"{where}, which the space function does not suggest for this point; it "
                                         f"suggests {sorted(trial.distributions)}")
                    if not _distribution_holds(distribution, value):
                        raise ValueError(f"{where} to {value!r}, outside {distribution}")
        finally:
            ot.logging.set_verbosity(verbosity)

    def _optuna_params(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """A point to evaluate as the study's parameter names and values."""
        if self.define_by_run is not None:
            return dict(point)
        values = values_from_point(self._params, point, owner="OptunaSearch")
        return {param.name: _optuna_value(param, values[param.path]) for param in self._params if param.path in values}

    # The Searcher interface ---------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.study is None or self.space is None:
            raise RuntimeError("OptunaSearch.suggest called before set_search_properties")
        if self._stopped:
            return FINISHED
        trial = self.study.ask()
        self._asked += 1
        rng = np.random.default_rng(None if self.seed is None else (self.seed, self._asked))
        try:
            config = self._suggest_config(trial, rng)
        except BaseException:
            self.study.tell(trial, state=_import_optuna().trial.TrialState.FAIL)
            raise
        self._live[trial_id] = trial
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._live.get(trial_id)
        if trial is None:
            return
        values = self._values(result)
        if values is None:
            return
        self._latest[trial_id] = values
        step = result.get("training_iteration")
        # Optuna keeps intermediate values for one objective only. A resumed trial reports
        # again the steps after its checkpoint: the first report of each step stands.
        if len(values) == 1 and isinstance(step, int) and step > self._last_step.get(trial_id, -1):
            self._last_step[trial_id] = step
            trial.report(values[0], step)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        state = _import_optuna().trial.TrialState
        trial, latest = self._forget(trial_id)
        if trial is None:
            return
        if error:
            return self._tell(trial, None, state.FAIL)
        values = self._values(result) if result is not None else None
        values = values if values is not None else latest  # the final result may lack the metric
        if values is None or any(math.isnan(v) for v in values):
            logger.info("OptunaSearch: %s reported no number (or NaN) for %s; told as FAIL", trial_id,
                        " and ".join(self._metrics))
            return self._tell(trial, None, state.FAIL)
        self._tell(trial, values, state.COMPLETE)

    def on_trial_pruned(self, trial_id: str, result: dict[str, Any] | None = None) -> None:
        if result is not None:
            self.on_trial_result(trial_id, result)  # its last value, if it was not reported yet
        trial, _ = self._forget(trial_id)
        if trial is not None:  # Optuna gives it the last reported value (single objective)
            self._tell(trial, None, _import_optuna().trial.TrialState.PRUNED)

    # Helpers ------------------------------------------------------------------------------------

    def _suggest_config(self, trial: Any, rng: np.random.Generator) -> dict[str, Any]:
        assert self.space is not None
        if self.define_by_run is None:
            return self.space.sample(rng, fixed=_suggest_values(trial, self._params))
        returned = self.define_by_run(trial)
        if returned is not None and (not isinstance(returned, Mapping)
                                     or not all(isinstance(k, str) for k in returned)):
            raise SearchSpaceError(f"OptunaSearch: the space function returned {returned!r}; it must return "
                                   "None or a dict of constants with string keys")
        config = self.space.sample(rng)  # the constants (and sample_from) of run(config=...)
        config.update(trial.params)
        config.update(returned or {})
        return config

    def _values(self, result: Mapping[str, Any]) -> list[float] | None:
        """The metrics' values in `result`; None if one is missing or not a number."""
        values = []
        for metric in self._metrics:
            value = result.get(metric)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                return None
            values.append(float(value))
        return values

    def _forget(self, trial_id: str) -> tuple[Any, list[float] | None]:
        self._last_step.pop(trial_id, None)
        return self._live.pop(trial_id, None), self._latest.pop(trial_id, None)

    def _tell(self, trial: Any, values: list[float] | None, state: Any) -> None:
        assert self.study is not None
        try:
            self.study.tell(trial, values, state=state)
        except RuntimeError as exc:
            # A sampler ends a study by calling study.stop() in after_trial, which Optuna allows
            # only inside study.optimize; the trial was told all the same (its state is stored).
            if "Study.stop" not in str(exc):
                raise
            self._stopped = True

    def __repr__(self) -> str:
        sampler = self.sampler if isinstance(self.sampler, str) or self.sampler is None else type(self.sampler).__name__
        return f"OptunaSearch(sampler={sampler or 'tpe'!r}, metric={self.metric!r}, mode={self.mode!r})"


# --- the search space as define-by-run suggestions ---------------------------------------------

def _suggest_values(trial: Any, params: Sequence[Parameter]) -> Values:
    """Suggest each parameter whose branch is chosen, parents first, as `Space.sample` takes them."""
    values: Values = {}
    for param in params:
        if is_active(param, values):
            values[param.path] = _suggest(trial, param)
    return values


def _suggest(trial: Any, param: Parameter) -> Any:
    domain, name = param.domain, param.name
    if isinstance(domain, Categorical):
        choices = domain.categories if _plain(domain.categories) else list(range(len(domain.categories)))
        chosen = trial.suggest_categorical(name, choices)
        return next(i for i, c in enumerate(choices) if type(c) is type(chosen) and c == chosen)
    if isinstance(domain, Integer):
        if domain.q == 1:
            return trial.suggest_int(name, domain.low, domain.high, log=domain.log)
        high = domain.low + (domain.high - domain.low) // domain.q * domain.q
        return trial.suggest_int(name, domain.low, high, step=domain.q)
    assert isinstance(domain, Float)
    if domain.q is None:
        return trial.suggest_float(name, domain.low, domain.high, log=domain.log)
    first, last = _multiples(domain)
    if domain.log:  # Optuna has no log scale with a step: suggest which multiple of q, on a log scale
        return domain.quantize(trial.suggest_int(name, first, last, log=True) * domain.q)
    return domain.quantize(trial.suggest_float(name, first * domain.q, last * domain.q, step=domain.q))


def _optuna_value(param: Parameter, value: Any) -> Any:
    """The value Optuna holds for a parameter value as `Space.sample` takes it (the inverse of `_suggest`)."""
    domain = param.domain
    if isinstance(domain, Categorical):
        return domain.categories[value] if _plain(domain.categories) else value
    if isinstance(domain, Float) and domain.q is not None:
        multiple = round(domain.quantize(value) / domain.q)
        return multiple if domain.log else multiple * domain.q
    return domain.quantize(value) if isinstance(domain, Integer) else value


def _multiples(domain: Float) -> tuple[int, int]:
    """The first and last multiple of q in [low, high] (quniform's values), as counts of q."""
    assert domain.q is not None
    first = math.ceil(domain.low / domain.q - 1e-9)
    last = math.floor(domain.high / domain.q + 1e-9)
    return first, last


def _plain(categories: Sequence[Any]) -> bool:
    """Whether Optuna can show the categories themselves (distinct None/bool/int/float/str);
    otherwise it gets their indices (dicts, lists, objects, 1 and True together)."""
    allowed = (type(None), bool, int, float, str)
    if not all(type(c) in allowed for c in categories):
        return False
    if any(isinstance(c, float) and math.isnan(c) for c in categories):
        return False
    return not any(a == b for i, a in enumerate(categories) for b in categories[i + 1:])  # Optuna finds by ==


def _check_domains(space: Space, params: Sequence[Parameter]) -> None:
    """Refuse, before any trial, what has no Optuna distribution, naming the parameter."""
    if space.grid:
        paths = ", ".join(format_path(path) for path, _ in space.grid)
        raise SearchSpaceError(
            f"OptunaSearch does not support grid_search (at {paths}): use choice(), or pass "
            "sampler=optuna.samplers.GridSampler({...}) with the grid and choice() for its parameters")
    for param in params:
        domain, where = param.domain, format_path(param.path)
        if isinstance(domain, Integer) and domain.log and domain.q != 1:
            raise SearchSpaceError(f"OptunaSearch: {where} is a log-scale integer with q={domain.q}; "
                                   "Optuna has no log scale with a step (use q=1)")
        if isinstance(domain, Float) and domain.q is not None and _multiples(domain)[0] > _multiples(domain)[1]:
            raise SearchSpaceError(f"OptunaSearch: {where} = {domain!r} holds no multiple of q={domain.q}")
        if not isinstance(domain, (Categorical, Integer, Float)):
            raise SearchSpaceError(
                f"OptunaSearch does not support {domain!r} at {where}: Optuna has no unbounded normal "
                "distribution; use uniform() or quniform() with bounds, or a space= function")


def _check_sampler_needs(sampler: Any) -> None:
    """CMA-ES and GP import their package only once their startup trials are done: without it,
    the experiment would stop there. Say so now."""
    for cls in type(sampler).__mro__:
        if cls.__name__ in _NEEDS:
            module, hint = _NEEDS[cls.__name__]
            if importlib.util.find_spec(module) is None:
                raise ImportError(f"OptunaSearch: {cls.__name__} needs {module}, which is not installed: {hint}")


class _NewLock:
    """Pickles as a call that makes a new lock of the same kind (a lock cannot be pickled)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory

    def __reduce__(self) -> tuple:
        return self.factory, ()


_LOCKS = ((type(threading.Lock()), threading.Lock), (type(threading.RLock()), threading.RLock))


def _without_locks(sampler: Any) -> Any:
    """A shallow copy of `sampler` whose lock attributes pickle as new locks (NSGAIISampler
    holds one); a name or None as it is."""
    if sampler is None or isinstance(sampler, str):
        return sampler
    locks = {name: _NewLock(factory) for name, value in vars(sampler).items()
             for kind, factory in _LOCKS if isinstance(value, kind)}
    if not locks:
        return sampler
    clone = copy.copy(sampler)
    vars(clone).update(locks)
    return clone


def _open_journal(path: str) -> Any:
    """_journal_storage(path); ExperimentDamaged if Optuna cannot read the journal (a line in the
    middle that is not JSON: damage, which only a new study gets past)."""
    try:
        return _journal_storage(path)
    except ValueError as exc:  # json.JSONDecodeError among them
        raise ExperimentDamaged(
            path, f"is unreadable ({type(exc).__name__}: {exc})",
            f"move it and {SEARCHER_STATE_FILE} away to resume with a new study, rebuilt by replaying the "
            "recorded trials to it (the trials already run are kept)") from exc


_OPTUNA_LOCK_SUFFIX = ".lock"  # JournalFileOpenLock(path) locks by creating path + ".lock"


def _journal_storage(path: str) -> Any:
    """Optuna's journal file storage at `path`, locked by an O_EXCL file (no symlink in the
    experiment directory); Optuna 4's names, else 3.x's."""
    storages = _import_optuna().storages
    journal = getattr(storages, "journal", None)
    if journal is not None and hasattr(journal, "JournalFileBackend"):
        return storages.JournalStorage(journal.JournalFileBackend(path, lock_obj=journal.JournalFileOpenLock(path)))
    return storages.JournalStorage(storages.JournalFileStorage(path, lock_obj=storages.JournalFileOpenLock(path)))


class _DistributionsSpace:
    """A dict of Optuna distributions ({"lr": FloatDistribution(1e-4, 1e-1, log=True)}) as a
    define-by-run space: each name suggested from its distribution."""

    def __init__(self, distributions: Mapping[str, Any]) -> None:
        self.distributions = dict(distributions)

    def __call__(self, trial: Any) -> None:
        ot = _import_optuna()
        for name, dist in self.distributions.items():
            if isinstance(dist, ot.distributions.FloatDistribution):
                trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, ot.distributions.IntDistribution):
                trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
            elif isinstance(dist, ot.distributions.CategoricalDistribution):
                trial.suggest_categorical(name, dist.choices)
            else:
                raise SearchSpaceError(f"OptunaSearch: space[{name!r}] is a {type(dist).__name__}; a dict space "
                                       "takes Float-, Int- and CategoricalDistribution")

    def __repr__(self) -> str:
        return f"{self.distributions!r}"


def _is_distributions(space: Any) -> bool:
    return isinstance(space, Mapping) and bool(space) and all(
        isinstance(d, _import_optuna().distributions.BaseDistribution) for d in space.values())


def _distribution_holds(distribution: Any, value: Any) -> bool:
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):  # e.g. a category that is none of the choices
        return False


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(f"OptunaSearch needs Optuna, an optional extra: {INSTALL_HINT}") from exc
    return optuna
