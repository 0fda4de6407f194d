"""``python -m graphlab`` is the ``graphlab`` command."""

import sys

from graphlab.cli import main

sys.exit(main())
