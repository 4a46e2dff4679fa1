"""``python -m meshsidecar`` dispatches to :func:`meshsidecar.cli.main`."""

import sys

from meshsidecar.cli import main

sys.exit(main())
