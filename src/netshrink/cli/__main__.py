"""``python -m netshrink.cli``: the ``netshrink`` command."""

import sys

from netshrink.cli import main

sys.exit(main())
