"""`python -m engine ...` is the `cest` command."""

import sys

from engine.cli import main

sys.exit(main())
