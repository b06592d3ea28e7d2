"""`python -m vicokd` (used by torchrun) runs the command line."""

import sys

from vicokd.cli import main

sys.exit(main())
