"""The Versions pane's keys: promote, roll back, canary, abort, verify, history, deploy.

A mixin of VersionsPane, kept apart so the pane's file reads as reading and drawing. Each
action that moves what is live asks the shared confirmation first (focus on Cancel), then
runs in a thread worker that opens its own Registry and closes it; a refusal
(RegistryError) or a failure comes back as a plain-text notification. `D` runs the CLI
(`python -m trainledger.engines.registry deploy MODEL --run RUN --json`) as a child
process, a dry run first whose checks the confirmation shows: its probe imports torch,
which this process never does. Under `--readonly` the keys that write are hidden from the
footer and refused with a word.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.message import Message

from trainledger.console.screens.confirm import Confirmation, ConfirmScreen
from trainledger.console.text import notify_plain
from trainledger.console.widgets import versions_render as render
from trainledger.engines.registry.types import ModelState, RegistryError, Version
from trainledger.engines.workspace import Workspace

if TYPE_CHECKING:
    from trainledger.console.panes.versions import VersionsPane

    _Base = VersionsPane
else:
    _Base = object

WRITES = {"promote", "rollback", "canary", "abort", "deploy", "verify"}
REASON = "via the console"
DEPLOY_TIMEOUT_S = 600.0


class OpDone(Message):
    def __init__(self, title: str, text: str, error: bool = False) -> None:
        super().__init__()
        self.title, self.text, self.error = title, text, error


class DeployChecked(Message):
    def __init__(self, req: Any, result: dict[str, Any] | None, error: str | None) -> None:
        super().__init__()
        self.req, self.result, self.error = req, result, error


def deploy_argv(ws: Workspace, model: str, run_id: str, dry_run: bool) -> list[str]:
    """`trainledger registry deploy MODEL --run RUN --json` as this interpreter runs it."""
    argv = [sys.executable, "-m", "trainledger.engines.registry", "deploy", model, "--run", run_id,
            "--json", "--workspace", str(ws.root), "--reason", REASON]  # fmt: skip
    return argv + (["--dry-run"] if dry_run else [])


def run_deploy(ws: Workspace, model: str, run_id: str, dry_run: bool) -> tuple[dict[str, Any] | None, str | None]:
    """Run the deploy process; (its JSON answer, None) or (the JSON if any, why it refused or failed)."""
    proc = subprocess.run(deploy_argv(ws, model, run_id, dry_run), capture_output=True, text=True,
                          timeout=DEPLOY_TIMEOUT_S, stdin=subprocess.DEVNULL)  # fmt: skip
    answer = None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if lines:
        try:
            answer = json.loads(lines[-1])
        except ValueError:
            answer = None
    if proc.returncode == 0 and answer is not None:
        return answer, None
    said = proc.stderr.strip().splitlines()
    why = said[-1] if said else (answer or {}).get("change", {}).get("message") or f"exit status {proc.returncode}"
    return answer, why



class VersionsActions(_Base):
    """Mixed into VersionsPane: the actions behind its keys."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in WRITES and self.readonly)  # hidden from the footer, refused

    def on_key(self, event: events.Key) -> None:
        keys = {b.key: b.action for b in self.BINDINGS if b.action in WRITES}
        if self.readonly and event.key in keys:
            event.stop()
            self._refuse_readonly(keys[event.key])

    def _refuse_readonly(self, action: str) -> bool:
        if self.readonly:
            notify_plain(self, f"{action}: refused, the console is read-only (--readonly)", title="Versions",
                         severity="warning")  # fmt: skip
        return self.readonly

    def _ask(self, ask: Confirmation, then: Callable[[], None]) -> None:
        def chosen(ok: bool | None) -> None:
            if ok:
                then()

        self.app.push_screen(ConfirmScreen(ask), chosen)

    def _need(self, version: bool = True) -> tuple[ModelState, Version | None] | None:
        m, v = self.selected()
        if m is None or (version and v is None):
            notify_plain(self, "select a version first" if m else "no model selected", title="Versions",
                         severity="warning")  # fmt: skip
            return None
        return m, v

    def action_promote(self) -> None:
        if self._refuse_readonly("promote") or (got := self._need(version=False)) is None:
            return
        m, v = got
        if v is None or v.version == m.active:
            v = self.versions.get((m.name, m.canary)) if m.canary else None
        if v is None:
            return notify_plain(self, f"{m.name}: nothing to promote (no canary); select a version",
                                title="Promote", severity="warning")  # fmt: skip
        from trainledger.console.panes.versions_provenance import provenance_ask

        def ask(a: Any) -> None:  # a: the version's stored report, verified just now
            extra = a.audit_detail() if a.blocks else None
            self._ask(provenance_ask(render.promote_ask(m, v, self.hashed), v.version, a),
                      lambda: self._op("promote", m.name, v.version, extra=extra))  # fmt: skip

        self.hashed_then(v, lambda: self.assessed_then((m.name, v.version), ask))

    def action_rollback(self) -> None:
        if self._refuse_readonly("rollback") or (got := self._need(version=False)) is None:
            return
        m, v = got
        if v is None or v.version in (m.active, m.canary):
            v = self.versions.get((m.name, m.previous)) if m.previous else None
        if v is None:
            return notify_plain(self, f"{m.name} has no rollback target; select the version to roll back to",
                                title="Roll back", severity="warning")  # fmt: skip
        self.hashed_then(v, lambda: self._ask(render.rollback_ask(m, v, self.hashed),
                                              lambda: self._op("rollback", m.name, v.version)))  # fmt: skip

    def action_canary(self) -> None:
        if self._refuse_readonly("canary") or (got := self._need()) is None:
            return
        m, v = got
        assert v is not None
        if v.version == m.active:
            return notify_plain(self, f"{m.name} {v.version} is the active version; select another for the canary",
                                title="Canary", severity="warning")  # fmt: skip
        from trainledger.console.screens.canary_prompt import CanaryPrompt

        def got_traffic(traffic: int | None) -> None:
            if traffic is not None:
                self.hashed_then(v, lambda: self._ask(render.canary_ask(m, v, traffic, self.hashed),
                                                      lambda: self._op("canary", m.name, v.version, traffic)))

        current = m.traffic if m.canary == v.version else 0
        self.app.push_screen(CanaryPrompt(m.name, v.version, m.active, current), got_traffic)

    def action_abort(self) -> None:
        if self._refuse_readonly("abort") or (got := self._need(version=False)) is None:
            return
        m, _ = got
        if m.canary is None:
            return notify_plain(self, f"{m.name} has no canary to abort; {m.active or 'nothing'} stays active",
                                title="Abort", severity="warning")  # fmt: skip
        self._ask(render.abort_ask(m), lambda: self._op("abort", m.name, None))

    def action_verify(self) -> None:
        if self._refuse_readonly("verify"):
            return
        m, _ = self.selected()
        self._op("verify", m.name if m else None, None)

    def action_history(self) -> None:
        m, _ = self.selected()
        if m is None:
            return notify_plain(self, "no model selected", title="History", severity="warning")
        from trainledger.console.screens.version_history import VersionHistory

        self.app.push_screen(VersionHistory(m, [e for e in self.audit if e.model == m.name], self.look))

    def action_open_run(self) -> None:
        m, v = self.selected()
        if v is None:
            return
        if not v.run_id:
            return notify_plain(self, f"{v.model} {v.version} came from a folder ({v.source}): it has no run",
                                title="Versions", severity="warning")  # fmt: skip
        for entry, pane in self.app.panes():
            if hasattr(pane, "show_run"):
                self.app.action_show_pane(entry.id)  # type: ignore[attr-defined]
                if not pane.show_run(v.run_id):
                    notify_plain(self, f"run {v.run_id} is not in this workspace now; {v.version} keeps its bytes",
                                 title="Versions", severity="warning")  # fmt: skip
                return

    @work(thread=True, group="versions-op", exit_on_error=False, description="registry operation")
    def _op(self, what: str, model: str | None, version: str | None, traffic: int = 0,
            extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        from trainledger.engines.registry.store import Registry

        title = f"{what.capitalize()} {model or ''}".strip()
        try:
            with Registry(self.workspace) as reg:
                if what == "promote":
                    text = reg.promote(model, version, reason=REASON, details=extra).message  # type: ignore[arg-type]
                elif what == "rollback":
                    text = reg.rollback(model, version, reason=REASON).message  # type: ignore[arg-type]
                elif what == "canary":
                    text = reg.canary(model, version, traffic, reason=REASON).message  # type: ignore[arg-type]
                elif what == "abort":
                    text = reg.abort(model, reason=REASON).message  # type: ignore[arg-type]
                else:
                    text = render.verify_said(reg.verify(model, reason=REASON))
            self.post_message(OpDone(title, text, error="corrupt" in text and what == "verify"))
        except RegistryError as exc:
            self.post_message(OpDone(title, f"refused: {exc}", error=True))
        except Exception as exc:  # noqa: BLE001 - said; nothing half-done (one transaction per operation)
            self.post_message(OpDone(title, f"failed: {type(exc).__name__}: {exc}", error=True))

    def on_op_done(self, message: OpDone) -> None:
        notify_plain(self, message.text, title=message.title, severity="error" if message.error else "information",
                     timeout=10 if message.error else 5)  # fmt: skip
        self.request_read()  # the watcher says so too; this covers a workspace without one

    # ------------------------------------------------------------------ deploy (a child process)
    def action_deploy(self) -> None:
        if self._refuse_readonly("deploy"):
            return
        from trainledger.console.screens.run_picker import RunPicker

        m, _ = self.selected()
        self.app.push_screen(RunPicker(self.workspace, m.name if m else None), self._picked)

    def _picked(self, req: Any) -> None:
        if req is None:
            return
        notify_plain(self, f"checking run {req.run_id} for {req.model} (a dry run: loads the weights, changes "
                     "nothing)…", title="Deploy", timeout=4)  # fmt: skip
        self._deploy(req, True)

    @work(thread=True, group="versions-deploy", exit_on_error=False, description="deploy a run")
    def _deploy(self, req: Any, dry_run: bool) -> None:
        try:
            result, error = run_deploy(self.workspace, req.model, req.run_id, dry_run)
        except (OSError, subprocess.SubprocessError) as exc:
            result, error = None, f"{type(exc).__name__}: {exc}"
        if dry_run:
            self.post_message(DeployChecked(req, result, error))
        elif error is not None:
            self.post_message(OpDone(f"Deploy {req.model}", f"refused: {error}", error=True))
        else:
            self.post_message(OpDone(f"Deploy {req.model}", (result or {}).get("change", {}).get("message", "done")))

    def on_deploy_checked(self, message: DeployChecked) -> None:
        from trainledger.console.screens.run_picker import deploy_ask

        req, result = message.req, message.result
        if message.error is not None or result is None or not result.get("ok"):
            failed = [f"✖ {c.get('name')}: {c.get('detail')}" for c in (result or {}).get("checks", [])
                      if not c.get("ok") and not c.get("skipped")]  # fmt: skip
            notify_plain(self, "\n".join([f"refused: {message.error or 'a check failed'}", *failed]),
                         title=f"Deploy {req.model}", severity="error", timeout=12)  # fmt: skip
            return
        self._ask(deploy_ask(req, result), lambda: self._deploy(req, False))
