"""`python -m bortnas` runs the CLI."""

import sys

from bortnas.app.cli import main

sys.exit(main())
