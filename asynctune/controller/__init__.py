"""The experiment loop: suggest -> place -> start -> results -> decide.

- loop.py: `Controller`, the one asyncio loop and TaskGroup that owns every task
- table.py: the trial table (trials, waiting, running, runtimes) and its membership changes
- driver.py: one trial's attempt, from placement to its last event
- runtime.py: `TrialRuntime`, a running trial's checked transitions
- outcomes.py, actions.py, decision.py, ending.py: what a result or an ending does, the
  scheduler's actions applied after its hook returns, decision precedence, the run's end
- searcher_driver.py, metric_check.py, replay.py: the searcher's side, the first result's
  checks, rebuilding a scheduler on resume
- resource_monitor.py, trial_monitoring.py: CPU/memory/GPU sampling and the memory limit
"""
