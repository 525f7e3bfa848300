"""Child process of capture_console.py: the console headless on its Capture tab, timed.

    python benchmarks/_capture_console_child.py WORKSPACE [--seconds 10] [--settle 1.5]

Opens `TrainledgerApp(ws, watch=True)` headless at 120x40, presses `2` (the Capture tab, as a
user would), waits `--settle` seconds for the pane to load, then measures for `--seconds`:
  * loop lag: an asyncio timer asks to run every 10 ms (call_later on Textual's own event
    loop); each sample is how late it ran. A sample is the time the event loop was busy with
    something else (a refresh, a message handler, the GIL held by a worker thread) when it
    was due: what a keypress would wait for at that moment.
  * refresh time: the duration of each `Screen._on_timer_update`, Textual's per-frame work
    (layout when needed, the compositor's render of the dirty widgets, handing the frame to
    the driver; the headless driver then skips only the terminal write).
Prints one JSON line: the samples' count and p50/p95/max for both, the number of frames, the
window (time.monotonic(), one clock for all processes), and what tab 2 shows.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from textual.screen import Screen
from textual.widgets import TabbedContent

from trainledger.console.app import TrainledgerApp
from trainledger.engines.workspace import open_workspace


def stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    a = np.asarray(xs) * 1000
    return {"n": len(xs), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max())}  # fmt: skip


def main() -> None:
    workspace = sys.argv[1]
    seconds = (
        float(sys.argv[sys.argv.index("--seconds") + 1])
        if "--seconds" in sys.argv
        else 10.0
    )
    settle = (
        float(sys.argv[sys.argv.index("--settle") + 1])
        if "--settle" in sys.argv
        else 1.5
    )
    lags: list[float] = []
    refreshes: list[float] = []
    out: dict = {}
    window = {"measuring": False}
    original = Screen._on_timer_update

    def timed_update(self: Screen) -> None:
        t0 = time.perf_counter()
        try:
            original(self)
        finally:
            if window["measuring"]:
                refreshes.append(time.perf_counter() - t0)

    Screen._on_timer_update = timed_update  # type: ignore[method-assign]

    class Timed(TrainledgerApp):
        def on_mount(self) -> None:  # runs before TrainledgerApp.on_mount
            self.set_timer(seconds + settle + 60, self.exit)  # never hang a benchmark
            self.call_after_refresh(self.simulate_key, "2")
            self.set_timer(settle, self._start)

        def _start(self) -> None:
            loop = asyncio.get_running_loop()
            t_end = time.monotonic() + seconds
            window.update(measuring=True, start=time.monotonic(), end=t_end)

            def tick(due: float) -> None:
                now = time.monotonic()
                lags.append(now - due)
                if now < t_end:
                    loop.call_later(0.01, tick, now + 0.01)
                else:
                    window["measuring"] = False
                    self._finish()

            loop.call_later(0.01, tick, time.monotonic() + 0.01)

        def _finish(self) -> None:
            tabs = self.query_one(TabbedContent)
            pane = tabs.get_pane("capture")
            out["active_tab"] = tabs.active
            out["tab2_shows"] = sorted({type(w).__name__ for w in pane.children})
            # the Capture pane keeps the server's last /stats answer (None: never got one)
            out["stats_seen"] = any(
                getattr(w, "stats", None) is not None for w in pane.children
            )
            self.exit()

    app = Timed(open_workspace(workspace), watch=True)
    app.run(headless=True, size=(120, 40))
    print(json.dumps({**out, "window": [window.get("start"), window.get("end")], "lag_ms": stats(lags),
                      "refresh_ms": stats(refreshes), "torch_imported": "torch" in sys.modules}))  # fmt: skip


if __name__ == "__main__":
    main()
