"""The Ports pane's keys (`u` start a port, `d` drain and stop it, `r` restart it), and what it
says when what a port serves moves without a key (the server aborted a canary).

A mixin of PortsPane, kept apart so the pane's file reads as polling and drawing. Each key asks
the shared confirmation first (focus on Cancel), then runs engines/serving/process
(`start_port(ws, spec)` with the port's entry of ports.toml, `stop_port(ws, port)`) in a thread
worker, as the Versions pane runs its registry operations: the server is a process of its own
either way, started through the engines' launcher, and nothing here imports torch. A refusal
or a failure comes back as a plain-text notification, and the pane polls at once. Under
`--readonly` the keys are hidden from the footer and refused with a word.

PortsMoves reads the models' newest audit entries in a worker: when a port's active or canary
changed between two polls it says the change with that entry's reason; when the registry changed
it says an abort or rollback newer than the entry read before (the server may have aborted a
canary between two polls). Each entry is said once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.message import Message

from trainledger.console.screens.confirm import Confirmation, ConfirmScreen
from trainledger.console.text import clean, notify_plain
from trainledger.console.widgets import ports_render as render

if TYPE_CHECKING:
    from trainledger.console.panes.ports import PortsPane
    from trainledger.engines.serving.view import PortView

    _Base = PortsPane
else:
    _Base = object

WRITES = {"start", "stop", "restart"}
AUTO = ("abort", "rollback")  # what a port server does by itself
DOING = {"start": "starting", "stop": "stopping", "restart": "restarting"}


class MovesRead(Message):
    """The newest audit entry of each model asked about (model -> entry)."""

    def __init__(self, entries: dict[str, Any], changed: dict[str, str], error: str | None = None) -> None:
        super().__init__()
        self.entries = entries
        self.changed = changed  # model -> what the pane saw change ("port 9001: v1 + v3 → v1")
        self.error = error


class PortDone(Message):
    def __init__(self, port: int, title: str, text: str, error: bool = False) -> None:
        super().__init__()
        self.port, self.title, self.text, self.error = port, title, text, error


def log_shown(row: PortView) -> str:
    return f".trainledger/logs/port-{row.port}.log"


def _serving(row: PortView) -> str:
    return f"serving {render.versions_words(row)} on {clean(row.url)}"


def start_ask(row: PortView) -> Confirmation:
    what = clean(row.model) if row.model else "the passthrough"
    return Confirmation(
        title=f"Start port {row.port}?", action="Start the server",
        change=(f"{row.port} {clean(row.state)}", f"serving {what}: the registry's active version and its canary"),
        details=(f"trainledger ports up {row.port}: a server process in the background, listed in ports.toml; "
                 f"its log is {log_shown(row)}. It checks each version's sha256 before it serves a byte of it."),
    )  # fmt: skip


def stop_ask(row: PortView) -> Confirmation:
    pid = f" (pid {row.pid})" if row.pid is not None else ""
    return Confirmation(
        title=f"Drain and stop port {row.port}?", action="Stop the server", cancel="Keep it running",
        change=(_serving(row), "stopped"),
        details=(f"The server{pid} gets SIGTERM, finishes the requests in flight (up to 5 s) and exits. "
                 "Clients get connection errors until it is started again (u)."
                 + ("" if row.configured else " It was started by hand: u cannot start it again from here.")),
    )  # fmt: skip


def restart_ask(row: PortView) -> Confirmation:
    pid = f" (pid {row.pid})" if row.pid is not None else ""
    return Confirmation(
        title=f"Restart port {row.port}?", action="Restart", cancel="Keep it running",
        change=(_serving(row), "a fresh server on the registry's active version and canary"),
        details=(f"The server{pid} drains (up to 5 s) and stops; a new one starts from ports.toml. "
                 "Requests in the gap get connection errors. A registry change needs no restart: "
                 "the server swaps versions by itself."),
    )  # fmt: skip


class PortsActions(_Base):
    """Mixed into PortsPane: the actions behind its keys."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in WRITES and self.readonly)  # hidden from the footer, refused

    def on_key(self, event: events.Key) -> None:
        keys = {b.key: b.action for b in self.BINDINGS if b.action in WRITES}
        if self.readonly and event.key in keys:
            event.stop()
            self._refuse_readonly(keys[event.key])

    def _refuse_readonly(self, action: str) -> bool:
        if self.readonly:
            notify_plain(self, f"{action}: refused, the console is read-only (--readonly)", title="Ports",
                         severity="warning")  # fmt: skip
        return self.readonly

    def _ask(self, ask: Confirmation, then: Callable[[], None]) -> None:
        def chosen(ok: bool | None) -> None:
            if ok:
                then()

        self.app.push_screen(ConfirmScreen(ask), chosen)

    def _target(self, action: str) -> PortView | None:
        if self._refuse_readonly(action):
            return None
        row = self.selected()
        if row is None:
            notify_plain(self, "no port yet: list one in ports.toml", title="Ports", severity="warning")
            return None
        if row.port in self.busy:
            notify_plain(self, f"port {row.port} is {self.busy[row.port]} already", title="Ports")
            return None
        return row

    def _say(self, text: str) -> None:
        notify_plain(self, text, title="Ports", severity="warning")

    def action_start(self) -> None:
        if (row := self._target("start")) is None:
            return
        if not row.configured:
            return self._say(f"port {row.port} is not in ports.toml: add it there to start it from here")
        if row.state in render.RUNNING:
            return self._say(f"port {row.port} is {clean(row.state)} already (pid {row.pid}); r restarts it")
        self._ask(start_ask(row), lambda: self._act("start", row.port))

    def action_stop(self) -> None:
        if (row := self._target("stop")) is None:
            return
        if row.state not in render.RUNNING and row.pid is None:
            return self._say(f"nothing runs on port {row.port} ({clean(row.state)}); u starts it")
        self._ask(stop_ask(row), lambda: self._act("stop", row.port))

    def action_restart(self) -> None:
        if (row := self._target("restart")) is None:
            return
        if not row.configured:
            return self._say(f"port {row.port} was started by hand (not in ports.toml): d stops it; "
                             "add it to ports.toml to restart it from here")  # fmt: skip
        if row.state not in render.RUNNING and row.pid is None:
            return self._say(f"nothing runs on port {row.port} ({clean(row.state)}); u starts it")
        self._ask(restart_ask(row), lambda: self._act("restart", row.port))

    def _act(self, what: str, port: int) -> None:
        self.busy[port] = DOING[what]
        self._render_foot()
        self._control(what, port)

    @work(thread=True, group="ports-control", exit_on_error=False, description="start or stop a port")
    def _control(self, what: str, port: int) -> None:
        title = f"{what.capitalize()} port {port}"
        try:
            from trainledger.engines.serving import portsfile, process
        except ImportError as exc:
            self.post_message(PortDone(port, title, f"the port servers are not available: {exc}", error=True))
            return
        said = []
        try:
            if what in ("stop", "restart"):
                said.append(process.stop_port(self.workspace, port))
            if what in ("start", "restart"):
                spec = next((s for s in portsfile.read_ports(self.workspace) if s.port == port), None)
                if spec is None:
                    raise process.PortsError(f"port {port} is not in ports.toml any more")
                rec = process.start_port(self.workspace, spec)
                said.append(f"port {port} serving at {rec.url} (pid {rec.pid})")
            self.post_message(PortDone(port, title, "\n".join(said)))
        except (process.PortsError, portsfile.PortsFileError) as exc:
            self.post_message(PortDone(port, title, "\n".join([*said, f"refused: {exc}"]), error=True))
        except Exception as exc:  # noqa: BLE001 - said; the poll shows what runs
            self.post_message(PortDone(port, title, "\n".join([*said, f"failed: {type(exc).__name__}: {exc}"]),
                                       error=True))  # fmt: skip

    def on_port_done(self, message: PortDone) -> None:
        self.busy.pop(message.port, None)
        notify_plain(self, message.text, title=message.title, severity="error" if message.error else "information",
                     timeout=12 if message.error else 5)  # fmt: skip
        self._render_foot()
        if not self.held:
            self.poll_now()


class PortsMoves(_Base):
    """Mixed into PortsPane: say at once, with its reason, that what a port serves moved."""

    def moves(self, rows: Sequence[PortView]) -> dict[str, str]:
        """Models whose port's active or canary changed since the last poll (model -> what changed)."""
        changed: dict[str, str] = {}
        for r in rows:
            now = (r.model, r.active, r.canary)
            before = self._seen.get(r.port)
            if r.state not in ("up", "slow") or r.active is None:
                continue  # a port that does not answer says nothing about versions
            self._seen[r.port] = now
            if before is not None and r.model is not None and before[0] == r.model and before[1:] != now[1:]:
                old = f"{before[1] or '–'}" + (f" + {before[2]}" if before[2] else "")
                new = f"{r.active or '–'}" + (f" + {r.canary}" if r.canary else "")
                changed[r.model] = f"port {r.port}: {old} → {new}"
        return changed

    def check_audit(self, changed: dict[str, str], every_model: bool = False) -> None:
        """Read the newest audit entries of the changed models, of models not read yet (what is
        newer than that is news), and with `every_model` of every model a port serves."""
        shown = {r.model for r in self.rows.values() if r.model}
        models = set(changed) | (shown if every_model else shown - self._audit_seen.keys())
        if models:
            self._read_moves(changed, sorted(models))

    @work(thread=True, group="ports-moves", exit_on_error=False, description="read why a port's version moved")
    def _read_moves(self, changed: dict[str, str], models: list[str]) -> None:
        from trainledger.engines.registry.store import Registry

        entries: dict[str, Any] = {}
        error = None
        try:
            with Registry(self.workspace) as reg:
                for model in models:
                    try:
                        newest = reg.audit(model, limit=1, newest_first=True)
                    except ValueError:  # a name the registry refuses: it has no entries
                        continue
                    if newest:
                        entries[model] = newest[0]
        except Exception as exc:  # noqa: BLE001 - the change is said without its reason
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.post_message(MovesRead(entries, changed, error))

    def on_moves_read(self, message: MovesRead) -> None:
        for model, entry in message.entries.items():
            before = self._audit_seen.get(model)
            self._audit_seen[model] = max(before or 0, entry.id)
            news = before is not None and entry.id > before and entry.action in AUTO
            if entry.id in self._told or not (model in message.changed or news):
                continue
            self._told.add(entry.id)
            what = message.changed.get(model) or "port " + ", ".join(
                str(r.port) for r in self.rows.values() if r.model == model)
            text = f"{model} {what}\n{entry.action}"
            if entry.from_version or entry.to_version:
                text += f" {entry.from_version or '–'} → {entry.to_version or '–'}"
            text += f": {entry.reason or 'no reason given'}"
            auto = entry.action in AUTO
            notify_plain(self, text, title=f"Ports: {model} {entry.action}", severity="warning" if auto else
                         "information", timeout=15 if auto else 6)  # fmt: skip
        for model, what in message.changed.items():
            if model not in message.entries:
                why = f"(its reason could not be read: {message.error})" if message.error else "(no audit entry)"
                notify_plain(self, f"{model} {what} {why}", title="Ports", severity="warning", timeout=10)
        detail = self._detail_screen()
        if detail is not None and (detail.row.model in message.changed or detail.row.model in message.entries):
            detail.reread()
