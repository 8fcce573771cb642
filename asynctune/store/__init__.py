"""The experiment directory's one owner: what is on disk, how it is named, locked, published and read.

Modules:
    lock         one driver per experiment (an flock held for the driver's life)
    format       experiment.json's format version, validation on read, paths kept relative
    checkpoints  checkpoints published atomically (staged under a temporary name, then renamed)
    vanished     noticing that a directory was deleted under a running experiment
"""
