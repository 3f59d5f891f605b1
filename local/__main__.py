"""Entry point for ``python -m local``."""

import sys

from local.cli import main

if __name__ == "__main__":
    sys.exit(main())
