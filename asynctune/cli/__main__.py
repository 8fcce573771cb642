"""`python -m asynctune.cli`: the `asynctune` command."""

import sys

from . import main

sys.exit(main())
