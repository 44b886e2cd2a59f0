"""`python -m bortnas` runs the CLI."""

import sys

from bortnas.cli import main

sys.exit(main())
