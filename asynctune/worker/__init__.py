"""The trial side: what runs in a worker process (`python -m asynctune.worker`).

- session.py: `report`, `get_checkpoint` and the trial's context
- trainable.py: the class API
- protocol.py: the framed messages between driver and worker
- pickling.py: shipping a trainable so that its tracebacks name the user's file and line
- main.py: the worker's main loop

Kept light: a worker starts by importing this package, not the driver's side.
"""
