"""`python -m trainledger.engines.registry ...`: the registry commands without the console's CLI."""

from __future__ import annotations

import sys

from trainledger.engines.registry.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
