"""`python -m asynctune.worker`: the worker process (see asynctune.executors.worker)."""

from .executors.worker import main

if __name__ == "__main__":
    main()
