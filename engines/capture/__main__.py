"""`python -m trainledger.engines.capture ...`: the capture CLI (serve, status, stop, send)."""

import sys

from trainledger.engines.capture.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
