"""Entry point for ``python -m local``."""

import sys

from local.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
