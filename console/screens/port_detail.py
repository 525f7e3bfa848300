"""Enter on a port: what it serves traced to files, its canary's analysis and the model's audit.

The resolved artifact file (the prober's realpath, no symlink left), the version's checksum and
each artifact's sha256 as the registry holds them, the run and the training data with its
sha256, the val metric at the deployed checkpoint, the latency figures, the analysis windows of
the canary or the bake (newest last, as the server keeps them) and the model's audit entries,
newest first. The pane hands it each new PortView (`show`); the registry's records are read
here in a thread worker, on opening and whenever the pane saw the port's version move
(`reread`). Every string is data: plain Text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from trainledger.console.text import clean, plain
from trainledger.console.widgets import ports_render as render
from trainledger.console.widgets import versions_render as vrender
from trainledger.console.widgets.capture_render import duration, sparkline
from trainledger.engines.workspace import Workspace

if TYPE_CHECKING:
    from trainledger.engines.registry.types import AuditEntry, Version
    from trainledger.engines.serving.view import PortView

AUDIT_SHOWN = 20


class RecordsRead(Message):
    """The registry's versions (active, canary) and the newest audit entries of the port's model."""

    def __init__(self, versions: dict[str, Version], audit: list[AuditEntry], error: str | None = None) -> None:
        super().__init__()
        self.versions, self.audit, self.error = versions, audit, error


def _num(value: Any, fmt: str) -> Text:
    """A window's number as Text; anything else a server sent is shown as data."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return plain(render.DASH if value is None else value)
    return Text(format(value, fmt), end="")


def _clock(value: Any) -> Text:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return Text(time.strftime("%H:%M:%S", time.localtime(value)), end="")
    return plain(render.DASH if value is None else value)


def facts(row: PortView, versions: dict[str, Version], look: render.Look, width: int) -> Table:
    """The two-column table of what the port serves and how it does."""
    t = Table(box=None, show_header=False, expand=True, pad_edge=False)
    t.add_column("what", style="dim", no_wrap=True)
    t.add_column("value", overflow="fold")
    t.add_row("url", plain(row.url))
    proc = [f"pid {row.pid}" if row.pid is not None else "no process"]
    if row.uptime_s is not None:
        proc.append(f"up {duration(row.uptime_s)}")
    proc.append("listed in ports.toml" if row.configured else "started by hand (not in ports.toml)")
    t.add_row("process", Text(" · ".join(proc)))
    health = render.health_text(row, look)
    if row.detail:
        health.append_text(plain(f" · {row.detail}"))
    t.add_row("health", health)
    if row.note:
        t.add_row("note", plain(f"⚠ {row.note}", style=look.warn))
    t.add_row("model", plain(row.model) if row.model else Text("passthrough: no model, the context back", end=""))
    t.add_row("active", _version_text(row.active, row.active_sha256, versions.get(row.active or ""), look))
    if row.canary:
        canary = plain(f"{row.canary} at {row.traffic} % of requests", style=look.warn)
        if versions.get(row.canary):
            canary.append_text(plain(f" · sha256 {versions[row.canary].checksum}", style=look.muted))
        t.add_row("canary", canary)
    else:
        t.add_row("canary", Text("none", style=look.muted, end=""))
    t.add_row("artifact", plain(row.artifact_path) if row.artifact_path else Text(render.DASH, end=""))
    v = versions.get(row.active or "")
    if v is not None:
        for a in v.artifacts:
            t.add_row("", plain(f"{a.name}  {vrender.size_text(a.bytes)}  sha256 {a.sha256}", style=look.muted))
    t.add_row("run", plain(row.run_id) if row.run_id else Text(render.DASH, end=""))
    if row.dataset_path:
        data = plain(row.dataset_path)
        data.append_text(plain(f" · sha256 {row.dataset_sha256 or render.DASH}", style=look.muted))
        t.add_row("dataset", data)
    else:
        t.add_row("dataset", Text(render.DASH, end=""))
    t.add_row("val metric", plain(render.metric(row.val_metric)))
    t.add_row("parameters", Text(f"{row.parameters:,}" if row.parameters is not None else render.DASH))
    server = f"server p50 {render.ms(row.p50_ms)} · p95 {render.ms(row.p95_ms)} ms"
    probes = f"probes p50 {render.ms(row.probe_p50_ms)} · p95 {render.ms(row.probe_p95_ms)} ms"
    t.add_row("latency", Text(f"{server}   {probes}"))
    t.add_row("traffic", Text(f"errors {render.percent(row.error_rate)} · {render.per_second(row.rps)} req/s · "
                              f"RSS {render.memory(row.rss_bytes)}"))  # fmt: skip
    values = [x for x in row.latency_history if isinstance(x, (int, float)) and math.isfinite(x)]
    if values:
        spark = sparkline(values, max(8, min(60, width - 16)))
        spark.append(f"  {len(values)} probes, max {render.ms(max(values))} ms", style=look.muted)
        t.add_row("probes", spark)
    return t


def _version_text(name: str | None, sha: str | None, v: Version | None, look: render.Look) -> Text:
    if not name:
        return Text("nothing active (the server answers 503)", style=look.bad, end="")
    t = plain(name, style=look.good)
    t.append_text(plain(f" · sha256 {sha or render.DASH}", style=look.muted))
    if v is not None and sha and v.checksum != sha:
        t.append_text(plain(f" ≠ the registry's {v.checksum}", style=look.bad))
    return t


def windows_table(row: PortView, look: render.Look) -> Table | Text:
    subject = clean(row.analysis_subject) if row.analysis_subject else None
    if not row.windows:
        said = "no analysis running" if subject is None else f"the {subject}'s first window is not over yet"
        return Text(said, style=look.muted, end="")
    t = Table(box=None, expand=True, pad_edge=False, header_style="bold")
    for name, right in (("start", False), ("end", False), ("requests", True), ("errors", True), ("err", True),
                        ("mean ms", True), ("memory", True), ("outcome", False), ("reason", False)):  # fmt: skip
        t.add_column(name, justify="right" if right else "left", no_wrap=name != "reason",
                     overflow="fold" if name == "reason" else "ellipsis")  # fmt: skip
    for w in row.windows:
        w = w if isinstance(w, dict) else {}
        req, err = w.get("requests"), w.get("errors")
        rate = err / req if isinstance(req, int) and isinstance(err, int) and req > 0 else None
        mem = w.get("memory_bytes")
        outcome = clean(w.get("outcome") or render.DASH)
        style = look.bad if outcome in ("failed", "fail") else look.good if outcome in ("passed", "pass") else ""
        t.add_row(_clock(w.get("start")), _clock(w.get("end")), _num(req, ","), _num(err, ","),
                  Text(render.percent(rate)), _num(w.get("mean_latency_ms"), ".1f"),
                  Text(render.memory(mem) if isinstance(mem, int) and not isinstance(mem, bool) else render.DASH),
                  plain(outcome, style=style), plain(w.get("reason") or ""))  # fmt: skip
    return t


def audit_text(audit: Sequence[AuditEntry], look: render.Look, error: str | None) -> Text:
    if error is not None:
        return plain(f"⚠ reading the registry failed: {error}", style=look.bad)
    if not audit:
        return Text("no audit entries", style=look.muted, end="")
    vlook = vrender.Look(muted=look.muted)
    out = Text(end="")
    for i, e in enumerate(audit):
        if i:
            out.append("\n")
        out.append_text(vrender.audit_line(e, vlook))
    return out


class PortDetail(ModalScreen[None]):
    DEFAULT_CSS = """
    PortDetail { align: center middle; }
    PortDetail > VerticalScroll {
        width: 96%; max-width: 150; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    PortDetail .detail-title { margin-top: 1; text-style: bold; }
    PortDetail #detail-hint { color: $text-muted; }
    """
    AUTO_FOCUS = "VerticalScroll"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,q", "close", "Close port", id="port_detail.close"),
    ]

    def __init__(self, row: PortView, workspace: Workspace, look: render.Look,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        super().__init__()
        self.row = row
        self.workspace = workspace
        self.look = look
        self.clock = clock
        self.versions: dict[str, Version] = {}
        self.audit: list[AuditEntry] = []
        self.read_error: str | None = None
        self.reads = 0  # registry reads answered (tests wait on it)
        self._reading = self._read_again = False

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._title(), id="detail-title")
            yield Static("Esc or q closes · ↑ ↓ PgUp PgDn scroll", id="detail-hint", markup=False)
            yield Static("", id="detail-facts")
            yield Static(self._windows_title(), id="detail-windows-title", classes="detail-title")
            yield Static("", id="detail-windows")
            yield Static(self._audit_title(), id="detail-audit-title", classes="detail-title")
            yield Static(Text("reading the registry…", style="dim"), id="detail-audit")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self._draw()
        self.reread()

    def on_resize(self) -> None:
        self._draw()

    def _title(self) -> Text:
        t = Text(f"Port {self.row.port} · ", style="bold", end="")
        t.append_text(plain(self.row.model or "passthrough", style="bold"))
        t.append("  ")
        t.append_text(render.health_text(self.row, self.look))
        return t

    def _windows_title(self) -> Text:
        r = self.row
        if r.analysis_subject:
            which = r.canary if r.analysis_subject == "canary" else r.active
            return plain(f"Analysis windows: the {r.analysis_subject} {which or ''} (newest last)")
        return Text("Analysis windows", end="")

    def _audit_title(self) -> Text:
        if self.row.model is None:
            return Text("Audit", end="")
        return plain(f"Audit of {self.row.model} (newest first, at most {AUDIT_SHOWN})")

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        width = self.query_one(VerticalScroll).size.width or 80
        self.query_one("#detail-title", Static).update(self._title())
        self.query_one("#detail-facts", Static).update(facts(self.row, self.versions, self.look, width))
        self.query_one("#detail-windows-title", Static).update(self._windows_title())
        self.query_one("#detail-windows", Static).update(Group(windows_table(self.row, self.look)))

    def show(self, row: PortView) -> None:
        """The pane polled again: draw the newer row (only when it changed)."""
        if row == self.row:
            return
        moved = (row.active, row.canary) != (self.row.active, self.row.canary)
        self.row = row
        self._draw()
        if moved:
            self.reread()

    # ------------------------------------------------------------------ the registry's records
    def reread(self) -> None:
        if self.row.model is None:
            self.query_one("#detail-audit", Static).update(Text("a passthrough port has no registry entries",
                                                                 style="dim"))  # fmt: skip
            return
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        self._read(self.row.model, tuple(v for v in (self.row.active, self.row.canary) if v))

    @work(thread=True, group="port-detail-read", exit_on_error=False, description="read a port's registry records")
    def _read(self, model: str, wanted: tuple[str, ...]) -> None:
        from trainledger.engines.registry.store import Registry
        from trainledger.engines.registry.types import RegistryError

        versions: dict[str, Version] = {}
        audit: list[AuditEntry] = []
        error = None
        try:
            with Registry(self.workspace) as reg:
                for name in wanted:
                    try:
                        versions[name] = reg.version(model, name)
                    except RegistryError:
                        pass  # not in this registry (the server says what it loaded)
                audit = reg.audit(model, limit=AUDIT_SHOWN, newest_first=True)
        except Exception as exc:  # noqa: BLE001 - shown in place of the audit
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.post_message(RecordsRead(versions, audit, error))

    @on(RecordsRead)
    def _records(self, message: RecordsRead) -> None:
        self._reading = False
        self.reads += 1
        self.versions, self.audit, self.read_error = message.versions, message.audit, message.error
        self._draw()
        self.query_one("#detail-audit", Static).update(audit_text(self.audit, self.look, self.read_error))
        if self._read_again:
            self._read_again = False
            self.reread()

    def action_close(self) -> None:
        self.dismiss(None)
