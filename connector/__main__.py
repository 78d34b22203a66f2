"""``python -m connector`` is the same as the ``connector`` command."""

import sys

from connector.cli import main

sys.exit(main())
