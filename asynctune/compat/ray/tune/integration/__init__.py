"""Ray's `ray.tune.integration`: framework callbacks that report to Tune. LightGBM's is mirrored;
the other modules name the asynctune way."""

HOW = ("call tune.report(...) yourself at the end of each epoch or boosting round (a framework callback of "
       "a few lines), with a tune.Checkpoint of the model if you want one")
