"""`python -m asynctune.executors.ssh check HOST...`."""

import sys

from .executor import main

sys.exit(main())
