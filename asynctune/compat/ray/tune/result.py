"""Ray's result key names, `ray.tune.result`."""

TRAINING_ITERATION = "training_iteration"
TIME_THIS_ITER_S = "time_this_iter_s"
TIME_TOTAL_S = "time_total_s"
TIMESTAMP = "timestamp"
TRIAL_ID = "trial_id"
DONE = "done"
PID = "pid"
HOSTNAME = "hostname"
# Ray checkpoints a class trainable when a callback sets this key in its result; asynctune
# decides checkpoints in the worker, before callbacks see the result: the key is ignored.
SHOULD_CHECKPOINT = "should_checkpoint"
DEFAULT_METRIC = "_metric"
