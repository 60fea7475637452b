"""``python -m bench``: the whole suite (see :mod:`bench.suite`)."""

import sys

from .suite import main

sys.exit(main())
