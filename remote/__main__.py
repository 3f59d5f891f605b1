"""Entry point for ``python -m remote``."""

import sys

from remote.cli import main

if __name__ == "__main__":
    sys.exit(main())
