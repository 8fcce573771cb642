"""Ray 2.0-2.6 style: air.session with dict checkpoints, BasicVariantGenerator, with_resources and a
PlacementGroupFactory."""
import os

import asynctune.compat.ray as ray
from asynctune.compat.ray import air, tune
from asynctune.compat.ray.air import Checkpoint, session
from asynctune.compat.ray.tune.search.basic_variant import BasicVariantGenerator


def fn(config):
    start = 0
    checkpoint = session.get_checkpoint()
    if checkpoint:
        start = checkpoint.to_dict()["i"] + 1
    for i in range(start, 3):
        marker = os.path.join(config["markers"], session.get_trial_id())
        if i == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first attempt fails")
        session.report({"v": config["x"] * i, "tid": session.get_trial_id(), "start": start,
                        "cpus": session.get_trial_resources().head_cpus},
                       checkpoint=Checkpoint.from_dict({"i": i, "x": config["x"]}))


if __name__ == "__main__":
    ray.init(num_cpus=2, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    print(ray.cluster_resources())
    markers = os.path.join(os.environ["RESULTS"], "markers")
    os.makedirs(markers)
    tuner = tune.Tuner(
        tune.with_resources(fn, tune.PlacementGroupFactory([{"CPU": 1}])),
        param_space={"x": tune.choice([1, 2, 3, 4]), "markers": markers},
        tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(random_state=3, max_concurrent=2),
                                    num_samples=4, metric="v", mode="max"),
        run_config=air.RunConfig(storage_path=os.environ["RESULTS"], verbose=0,
                                 failure_config=air.FailureConfig(max_failures=1)),
    )
    results = tuner.fit()
    print([r.metrics for r in results])
    assert results.num_errors == 0
    assert all(r.metrics["start"] == 1 and r.metrics["cpus"] == 1 for r in results)
    best = results.get_best_result()
    assert best.metrics["v"] == 2 * max(r.config["x"] for r in results)
    assert best.checkpoint.to_dict() == {"i": 2, "x": best.config["x"]}
    ray.shutdown()
    print("OK")
