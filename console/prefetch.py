"""Read the run list and the newest run's rows while Textual is still starting.

Importing Textual and laying out the first frame take a few hundred milliseconds in
which the disk sits idle. A Prefetch is started before that (by the CLI, before the
app module is even imported) in a plain thread, and the Curves pane adopts what it
read. Headless on purpose: it must not import Textual, or it would gain nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from trainledger.engines.metrics.cache import cache_is_fresh
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.workspace import METRICS_FILE, RunInfo, Workspace, list_runs

# Above this size a run with no fresh cache is parsed by a separate process: on the
# second core, instead of holding the GIL while Textual starts on the first.
WARM_BYTES = 32 * 1024 * 1024


def newest(runs: list[RunInfo]) -> RunInfo | None:
    """The run the Curves pane's cursor starts on (the run list is newest first)."""
    return max(runs, key=lambda r: (r.started or 0.0, r.id), default=None)


class Prefetch:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.runs: list[RunInfo] | None = None
        self.series: dict[str, RunSeries] = {}
        self.listed = threading.Event()
        self.done = threading.Event()
        self._warmer: subprocess.Popen[bytes] | None = None

    def start(self) -> "Prefetch":
        threading.Thread(target=self._run, name="trainledger-prefetch", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            self.runs = list_runs(self.ws)
            self.listed.set()
            first = newest(self.runs)
            if first is not None:
                self._warm(first)
                series = RunSeries(first.path, cache_dir=self.ws.cache_dir, run_id=first.id)
                series.refresh()  # from the cache when there is one
                self.series[first.id] = series
        except Exception:  # the pane falls back to reading everything itself
            self.series.clear()
        finally:
            self.listed.set()
            self.done.set()

    def _warm(self, run: RunInfo) -> None:
        path = run.path / METRICS_FILE
        try:
            big = os.stat(path).st_size >= WARM_BYTES
        except OSError:
            return
        if not big or cache_is_fresh(self.ws.cache_dir, run.id, path):
            return
        try:  # waiting here releases the GIL; a failure just means we parse ourselves
            self._warmer = subprocess.Popen(
                [sys.executable, "-m", "trainledger.engines.metrics.warm",
                 str(run.path), str(self.ws.cache_dir), run.id],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self._warmer.wait(timeout=600)
        except (OSError, subprocess.SubprocessError):
            self.cancel()

    def cancel(self) -> None:
        """Stop a warming process (the console is closing); the cache is never half-written."""
        proc = self._warmer
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
