"""`python -m asynctune.worker`: the worker process (see asynctune.worker.main)."""

from .main import main

main()
