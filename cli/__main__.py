"""``python -m rowstat.cli``: the same as the ``rowstat`` command."""

import sys

from . import main

sys.exit(main())
