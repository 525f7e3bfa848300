"""The Curves pane's run control: start a run from a form, stop one, sample its system.jsonl.

Kept apart from the chart logic in curves.py. Everything that touches a process or a
file runs in a thread worker through the headless helpers of engines/runs.py; the
console never imports torch, it starts `trainledger train` as a detached process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.worker import get_current_worker

from trainledger.console.messages import RunsChanged, SystemSampled
from trainledger.console.screens.confirm import Confirmation, ConfirmScreen
from trainledger.console.screens.run_control import NewRunRequest, NewRunScreen
from trainledger.console.text import notify_plain
from trainledger.console.widgets.runlist import RunList
from trainledger.engines import runs as run_control
from trainledger.engines.training.cli_checks import EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED
from trainledger.engines.workspace import RunInfo, read_run_info

if TYPE_CHECKING:
    from trainledger.console.panes.curves import CurvesPane

    _Base = CurvesPane
else:
    _Base = object


class RunControl(_Base):
    """Mixed into CurvesPane; uses its workspace, infos, system and run list."""

    system: dict[str, Any]

    def _sample_system(self) -> None:
        """Every 2 s: the last system.jsonl row of each running run, read in a worker."""
        running = {r.id: r.path for r in self.infos.values() if r.status == "running"}
        if not running and not self.system:
            return

        def work() -> None:
            rows = {}
            for run_id, path in running.items():
                row = run_control.read_system(path)
                if row is not None:
                    rows[run_id] = row
            self.post_message(SystemSampled(rows))

        self.run_worker(work, thread=True, group="system", exclusive=True, exit_on_error=False,
                        description="read the last system.jsonl rows")

    def on_system_sampled(self, message: SystemSampled) -> None:
        if message.rows != self.system:
            self.system = message.rows
            self._sync_list()

    def _refused_readonly(self, what: str) -> bool:
        """Under --readonly, say that `what` is refused and return True."""
        if getattr(self.app, "readonly", False):
            notify_plain(self, f"{what}: refused, the console is read-only (--readonly)", title="Curves",
                         severity="warning")  # fmt: skip
            return True
        return False

    def action_new_run(self) -> None:
        if self._refused_readonly("new run"):
            return
        cursor = self.query_one(RunList).cursor_run
        info = self.infos.get(cursor) if cursor else None
        screen = NewRunScreen(info.model if info else None, runs=list(self.infos.values()))
        self.app.push_screen(screen, self._new_run_chosen)

    def _new_run_chosen(self, request: NewRunRequest | None) -> None:
        if request is None:
            return
        ws = self.workspace
        app = self.app

        def work() -> None:
            try:
                started = run_control.start_run(ws, request.model, data=request.data, backend=request.backend,
                                                epochs=request.epochs, settings=request.settings, name=request.name,
                                                lr=request.lr, batch_size=request.batch_size,
                                                base=request.base)  # fmt: skip
            except (OSError, ValueError) as exc:
                app.call_from_thread(notify_plain, app, str(exc), title="New run", severity="error")
                return
            track = getattr(app, "track_trainer", None)  # the app says at quit what it leaves running
            if track is not None:
                app.call_from_thread(track, started)
            app.call_from_thread(notify_plain, app, f"run {started.run_id}\nlog {started.log_path}",
                                 title=f"Started {request.model}", timeout=6)  # fmt: skip
            self.post_message(RunsChanged())
            # Watched to its end, not for its first seconds only: a trainer that fails at once on
            # a loaded machine, or dies later (the OOM killer), is said with its log, never silent.
            code = run_control.wait_exit(started.proc, get_current_worker().cancelled_event)
            if code not in (None, EXIT_OK, EXIT_STOPPED, EXIT_INTERRUPTED):  # a stop on request is no failure
                tail = "\n".join(run_control.tail_lines(started.log_path, 6)) or "(empty log)"
                app.call_from_thread(
                    notify_plain, app,
                    f"{started.run_id} {run_control.describe_exit(code)}:\n{tail}\nlog {started.log_path}",
                    title="Run failed", severity="error", timeout=20,
                )  # fmt: skip
            if code is not None:
                self.post_message(RunsChanged())

        self.run_worker(work, thread=True, group="start-run", exit_on_error=False,
                        description=f"start a {request.model} run")

    def action_stop_run(self) -> None:
        if self._refused_readonly("stop run"):
            return
        cursor = self.query_one(RunList).cursor_run
        info = self.infos.get(cursor) if cursor else None
        if info is None:
            self.notify("no run under the cursor", title="Stop run", severity="warning")
            return
        try:
            plan = run_control.stop_plan(info)
        except run_control.StopRefused as exc:
            notify_plain(self, str(exc), title="Stop run", severity="error")
            return

        def chosen(confirmed: bool | None) -> None:
            if confirmed:
                self._stop(info)

        ask = Confirmation(
            title="Stop this run?", action="Stop the run", cancel="Keep it running",
            change=(f"{info.id}: {info.status}", "stopped (a last checkpoint first)"), details=plan,
        )  # fmt: skip
        self.app.push_screen(ConfirmScreen(ask), chosen)

    def _stop(self, info: RunInfo) -> None:
        app = self.app

        def work() -> None:
            try:
                fresh = read_run_info(info.path)  # it may have ended while the modal was open
                done = run_control.stop_run(fresh)
            except run_control.StopRefused as exc:
                app.call_from_thread(notify_plain, app, str(exc), title="Stop run", severity="error")
                return
            app.call_from_thread(notify_plain, app, done, title="Stop run", timeout=5)

        self.run_worker(work, thread=True, group="stop-run", exit_on_error=False,
                        description=f"stop run {info.id}")
