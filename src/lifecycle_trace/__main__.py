"""``python -m lifecycle_trace``: the ``lifecycle-trace`` command."""

import sys

from lifecycle_trace.cli import main

sys.exit(main())
