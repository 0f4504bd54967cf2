"""``python -m vidsme``: the same as the ``vidsme`` command (see ``vidsme.cli``)."""

import sys

from vidsme.cli import main

sys.exit(main())
