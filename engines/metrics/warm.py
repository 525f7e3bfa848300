"""Parse a large metrics.jsonl into the columnar cache, in a process of its own.

The console runs this for a large run with no fresh cache so that the parse uses the
second core while the first is busy starting Textual; the console then loads the
cache (milliseconds). Usage: python -m trainledger.engines.metrics.warm RUN_DIR CACHE_DIR RUN_ID
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainledger.engines.metrics.series import RunSeries


def warm(run_dir: Path, cache_dir: Path, run_id: str) -> int:
    series = RunSeries(run_dir, cache_dir=cache_dir, run_id=run_id)
    series.refresh()  # a parse this large writes the cache as it finishes
    return series.snapshot().n


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    print(warm(Path(argv[0]), Path(argv[1]), argv[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
