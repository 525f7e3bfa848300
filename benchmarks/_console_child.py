"""Child process of first_paint.py and large_run.py: open the console headless, time it.

    python benchmarks/_console_child.py WORKSPACE [--rows N]   # the trainledger console
    python benchmarks/_console_child.py --bare                  # a bare Textual App, one Static

Prints one JSON line: for each mark, seconds since this process started (from the
kernel's start time of the process in /proc/self/stat, 10 ms resolution) and since
the parent spawned it (BENCH_SPAWN_MONO, the parent's time.monotonic()). Marks:
imported (textual and the app imported), mounted (App on_mount), first_frame (the
first frame handed to the driver, App._display; headless drivers then skip the write),
pane_mounted (CurvesPane.on_mount, where it starts listing
runs), asked (the Curves pane asked for a run's rows), drawn (CurvesPane.on_drawn reported
>= N rows, N=1 by default), chart_rendered (the chart widget rendered those points)
and painted (the frame holding that chart handed to the driver). The app exits then. Nothing
but the standard library is imported before the first mark's clock starts.
"""

import json
import os
import sys
import time

T0 = time.monotonic()


def _age_at_t0() -> float:
    """Seconds between the kernel starting this process and T0."""
    with open("/proc/self/stat") as fh:
        after_name = fh.read().rsplit(")", 1)[1].split()
    started = int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime (ticks since boot)
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started - (time.monotonic() - T0)


marks: dict[str, float] = {}


def mark(name: str) -> None:
    marks.setdefault(name, time.monotonic())


def report(extra: dict) -> None:
    base = _age_at_t0()
    spawn = float(os.environ.get("BENCH_SPAWN_MONO", "nan"))
    out = {
        "since_start": {k: base + (v - T0) for k, v in marks.items()},
        "since_spawn": {k: v - spawn for k, v in marks.items()},
        "torch_imported": "torch" in sys.modules,
        **extra,
    }
    print(json.dumps(out))


def bare() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    mark("imported")

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")

        def on_mount(self) -> None:
            mark("mounted")

        def _display(self, screen, renderable) -> None:  # type: ignore[no-untyped-def]
            super()._display(screen, renderable)
            if renderable is not None and "painted" not in marks:
                mark("first_frame")
                mark("painted")
                self.call_later(self.exit)

    Bare().run(headless=True, size=(120, 40))
    report({})


def console(workspace: str, want_rows: int) -> None:
    # As `trainledger WORKSPACE` does: start reading before Textual is imported.
    from trainledger.console.prefetch import Prefetch
    from trainledger.engines.workspace import open_workspace

    mark("asked")
    prefetch = Prefetch(open_workspace(workspace)).start()
    from trainledger.console.app import TrainledgerApp
    from trainledger.console.panes.curves import CurvesPane
    from trainledger.console.widgets.chart import LineChart
    from trainledger.engines.workspace import open_workspace

    mark("imported")
    seen: dict[str, int] = {}

    class Timed(TrainledgerApp):
        def on_mount(self) -> None:  # runs before TrainledgerApp.on_mount (Textual walks the MRO)
            mark("mounted")
            self.set_timer(120, self.exit)  # never hang a benchmark

        def _display(self, screen, renderable) -> None:  # type: ignore[no-untyped-def]
            super()._display(screen, renderable)  # headless: returns without writing
            if renderable is None:
                return
            mark("first_frame")
            if "chart_rendered" in marks and "painted" not in marks:
                mark("painted")
                self.call_later(self.exit)

    def drawn(run_id: str, n: int) -> None:
        if n >= want_rows and "drawn" not in marks:
            mark("drawn")
            seen["rows"] = n

    original_refresh_run = CurvesPane.refresh_run
    original_init = CurvesPane.__init__
    original_render = LineChart.render
    original_pane_mount = CurvesPane.on_mount

    def pane_mount(self: CurvesPane) -> None:
        mark("pane_mounted")
        original_pane_mount(self)

    def render(self: LineChart):  # type: ignore[no-untyped-def]
        out = original_render(self)
        if "drawn" in marks and self.last_result is not None and self.last_result.points_in > 0:
            mark("chart_rendered")
            seen["points_in"] = self.last_result.points_in
        return out

    def refresh_run(self: CurvesPane, run_id: str) -> None:
        mark("asked")
        original_refresh_run(self, run_id)

    def init(self: CurvesPane, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        self.on_drawn = drawn

    CurvesPane.refresh_run = refresh_run  # type: ignore[method-assign]
    CurvesPane.__init__ = init  # type: ignore[method-assign]
    LineChart.render = render  # type: ignore[method-assign]
    CurvesPane.on_mount = pane_mount  # type: ignore[method-assign]
    app = Timed(open_workspace(workspace), watch=True, prefetch=prefetch)
    app.run(headless=True, size=(120, 40))
    report(seen)


if __name__ == "__main__":
    if "--bare" in sys.argv:
        bare()
    else:
        rows = int(sys.argv[sys.argv.index("--rows") + 1]) if "--rows" in sys.argv else 1
        console(sys.argv[1], rows)
