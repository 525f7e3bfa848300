"""The Curves pane's tidying keys: tags and note (`T`), archive (`A`), delete (`d`).

Kept apart from the chart logic in curves.py. Every write runs in a thread worker through
engines/runmeta.py (meta.json in the run folder) or engines/trash.py (the folder moves to
the workspace's trash, never removed); then the run list is read again (the watcher's
RunsChanged does the same when it runs). Delete asks through the one ConfirmScreen, the
user typing the run's id; a running run is never deleted. Under `--readonly` these keys
(and `n` / `S`, which start and stop trainers) are hidden from the footer and refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from textual import events

from trainledger.console.messages import RunsChanged
from trainledger.console.screens.confirm import Confirmation, ConfirmScreen
from trainledger.console.screens.run_tags import RunTagsScreen
from trainledger.console.text import clean, notify_plain
from trainledger.console.widgets.runlist import RunList
from trainledger.engines import runmeta, trash
from trainledger.engines.workspace import RunInfo

if TYPE_CHECKING:
    from trainledger.console.panes.curves import CurvesPane

    _Base = CurvesPane
else:
    _Base = object

# Actions that write to the workspace or start/stop a process: hidden and refused under --readonly.
WRITES = {"edit_tags": "tags", "toggle_archive": "archive", "delete_run": "delete",
          "new_run": "new run", "stop_run": "stop run"}  # fmt: skip


class RunTidy(_Base):
    """Mixed into CurvesPane; uses its workspace, infos and run list."""

    @property
    def readonly(self) -> bool:
        return bool(getattr(self.app, "readonly", False))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in WRITES and self.readonly)  # hidden from the footer, refused

    def on_key(self, event: events.Key) -> None:
        if not self.readonly:
            return
        keys: dict[str, str] = {}
        for b in self.BINDINGS:
            action = getattr(b, "action", "")
            if action in WRITES:
                for key in b.key.split(","):
                    keys[key.strip()] = action
        if event.key in keys:
            event.stop()
            self._refuse_readonly(WRITES[keys[event.key]])

    def _refuse_readonly(self, what: str) -> bool:
        if self.readonly:
            notify_plain(self, f"{what}: refused, the console is read-only (--readonly)", title="Curves",
                         severity="warning")  # fmt: skip
        return self.readonly

    def _cursor_info(self, title: str) -> RunInfo | None:
        cursor = self.query_one(RunList).cursor_run
        info = self.infos.get(cursor) if cursor else None
        if info is None:
            notify_plain(self, "no run under the cursor", title=title, severity="warning")
        return info

    def _write(self, title: str, describe: str, write: Callable[[], str]) -> None:
        """Run `write` in a thread worker; say what it did (or why not), then re-read the runs."""
        app = self.app

        def work() -> None:
            try:
                said = write()
            except (OSError, ValueError, trash.RunIsLive) as exc:
                app.call_from_thread(notify_plain, app, str(exc), title=title, severity="error")
                return
            app.call_from_thread(notify_plain, app, said, title=title, timeout=5)
            self.post_message(RunsChanged())

        self.run_worker(work, thread=True, group="tidy", exit_on_error=False, description=describe)

    # ------------------------------------------------------------------ T: tags and note
    def action_edit_tags(self) -> None:
        if self._refuse_readonly("tags") or (info := self._cursor_info("Tags")) is None:
            return

        def chosen(result: tuple[tuple[str, ...], str] | None) -> None:
            if result is None:
                return
            tags, note = result

            def write() -> str:
                runmeta.write_meta(info.path, tags=list(tags), note=note)
                shown = " ".join(f"#{t}" for t in tags) or "no tags"
                return f"{info.id}: {shown}" + (" · note kept" if note else "")

            self._write("Tags", f"write the tags of {info.id}", write)

        self.app.push_screen(RunTagsScreen(info.id, clean(info.label), info.tags, info.note), chosen)

    # ------------------------------------------------------------------ A: archive, v: show archived
    def action_toggle_archive(self) -> None:
        if self._refuse_readonly("archive") or (info := self._cursor_info("Archive")) is None:
            return
        archive = not info.archived

        def write() -> str:
            runmeta.write_meta(info.path, archived=archive)
            if not archive:
                return f"{info.id} is no longer archived"
            if self.list_view.show_archived:
                return f"{info.id} archived (⊟)"
            return f"{info.id} archived and hidden (v shows archived runs)"

        self._write("Archive", f"{'archive' if archive else 'unarchive'} {info.id}", write)

    def action_toggle_archived(self) -> None:
        self.list_view.show_archived = not self.list_view.show_archived
        self.apply_list_view()  # the line over the list says how many are archived

    # ------------------------------------------------------------------ d: delete (to the trash)
    def action_delete_run(self) -> None:
        if self._refuse_readonly("delete") or (info := self._cursor_info("Delete run")) is None:
            return
        if info.status == "running":
            notify_plain(self, f"{info.id} is running (pid {info.pid}): a running run is never deleted; "
                               "stop it first (S)", title="Delete run", severity="error")  # fmt: skip
            return
        where = trash.trash_dir(self.workspace)
        rel = where.relative_to(self.workspace.root) if where.is_relative_to(self.workspace.root) else where
        details = (f"name {clean(info.label)} · model {clean(info.model or '?')} · status {clean(info.status)}\n"
                   f"The folder moves to {rel}/ (trainledger runs purge empties it).")  # fmt: skip
        ask = Confirmation(title="Delete this run?", action="Delete the run", cancel="Keep it",
                           change=(f"runs/{info.id}", f"{rel}/{info.id}-<time>"), details=details,
                           type_to_confirm=info.id)  # fmt: skip
        ws = self.workspace

        def chosen(confirmed: bool | None) -> None:
            if not confirmed:
                return

            def write() -> str:
                dest = trash.delete_run(ws, info.id)  # refuses a run that started meanwhile
                return f"{info.id} moved to {dest}"

            self._write("Delete run", f"delete run {info.id}", write)

        self.app.push_screen(ConfirmScreen(ask), chosen)
