"""`python -m trainledger` is the same as the `trainledger` command."""

from trainledger.console.cli import main

raise SystemExit(main())
