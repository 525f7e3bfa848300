"""`python -m trainledger.engines.serving serve|ports ...`: what `ports up` starts, without the console's CLI."""

from __future__ import annotations

import sys

from trainledger.engines.serving.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
