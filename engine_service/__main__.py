"""``python -m engine_service`` is the ``ditserve`` command."""

import sys

from engine_service.cli import main

sys.exit(main())
