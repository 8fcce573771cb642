"""The experiment directory's one owner: its names and paths, the journal, experiment.json,
results files, checkpoints, private files and pickles, recording policies and recovery."""
