"""``python -m vlab.cli``: the ``vlab`` command."""

import sys

from . import main

sys.exit(main())
