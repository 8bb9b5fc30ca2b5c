"""`python -m pyllama` is the `pyllama` command."""

import sys

from pyllama.cli import main

sys.exit(main())
