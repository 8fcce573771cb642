"""The experiment directory's one owner: what is on disk, how it is named, locked, published and read.

Modules:
    layout         JSONL writing and repair (torn and damaged lines), atomic JSON files,
                   checkpoints on disk, a trial's params
    journal        journal.jsonl: its kinds of line and their fields, the format version, the
                   writer and the replay (resume's trial table), side by side
    names          every file and directory name in it, and the paths made of them (only here)
    jsonl          the one JSONL reader: a record per line, torn lines skipped, incremental tails
    format         experiment.json's format version, validation on read, paths kept relative
    lock           one driver per experiment (an flock held for the driver's life)
    checkpoints    checkpoints published atomically (staged under a temporary name, then renamed)
    signing        every pickle signed with the user's key, checked before it is loaded
    paths          no link out of the experiment, no id used as a path unchecked
    private_files  files and directories only the user can read
    recording      how results are written (files, batched, consolidated)
    recording_policy  the executor's `recording` as an object chosen once (what each mode does)
    state          while a run goes: each change to the journal, experiment.json snapshots, the
                   searcher's state, the room kept for the last save
    recovery       resuming: rebuilding the trial table from what is on disk
    vanished       noticing that a directory was deleted under a running experiment
"""
