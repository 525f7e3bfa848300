"""`D` in the Versions pane: pick the run to deploy, seeing which checkpoint that would take.

Seed 002 deployed the last epoch while the best was epoch 6 of 106: here each run says
its best checkpoint's epoch and whether that is the last one, before anything is checked.
The rows are read in a thread worker (run.json and the checkpoint's sidecar, through the
registry's own source.candidate_from_run, never torch). The screen only chooses; the pane
runs the dry run and the deploy (`trainledger registry deploy ... --json`) as a process.
`deploy_ask` turns that dry run's JSON into the shared confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from trainledger.console.screens.confirm import Confirmation
from trainledger.console.text import clean, plain
from trainledger.engines.workspace import InvalidId, Workspace, list_runs, validate_id


@dataclass(frozen=True)
class RunChoice:
    """One row: a run and what its best checkpoint is (or why there is none)."""

    run_id: str
    kind: str | None
    status: str
    best: str  # "epoch 6 of 106, not the last", or "no best checkpoint"
    deployable: bool
    why: str = ""  # why it cannot be deployed, in full


@dataclass(frozen=True)
class DeployRequest:
    model: str
    run_id: str


def best_words(candidate: Any) -> str:
    """What a best-checkpoint Candidate is: `epoch 6 of 106, not the last`."""
    if candidate.epoch is None:
        return "a checkpoint without an epoch"
    of = f" of {candidate.last_epoch}" if candidate.last_epoch is not None else ""
    last = "the last" if candidate.is_last else "not the last"
    return f"epoch {candidate.epoch}{of}, {last}"


def read_choices(ws: Workspace) -> list[RunChoice]:
    """Every run, newest first, with its best checkpoint (for a worker: reads files)."""
    from trainledger.engines.registry import source

    out = []
    for info in sorted(list_runs(ws), key=lambda r: (r.started or 0.0, r.id), reverse=True):
        try:
            cand = source.candidate_from_run(ws, info.id, checkpoint="best")
            out.append(RunChoice(info.id, info.model, info.status, best_words(cand), True))
        except Exception as exc:  # noqa: BLE001 - said when the run is chosen; the CLI gives the same reason
            out.append(RunChoice(info.id, info.model, info.status, "no best checkpoint", False, str(exc)))
    return out


def deploy_ask(req: DeployRequest, result: dict[str, Any]) -> Confirmation:
    """The confirmation of a deploy, from its dry run's `--json` answer (ok, candidate, checks, change)."""
    cand = result.get("candidate") or {}
    change = result.get("change") or {}
    checks = result.get("checks") or []
    to = change.get("to") or "a new version"
    of = f" of {cand.get('last_epoch')}" if cand.get("last_epoch") is not None else ""
    lines = ["traffic: none; the new version starts inactive (C canary, P promote)",
             f"checkpoint {cand.get('checkpoint') or 'best'} · epoch {cand.get('epoch')}{of} · "
             f"{'the best' if cand.get('is_best') else 'not the best'}, "
             f"{'the last' if cand.get('is_last') else 'not the last'}"]  # fmt: skip
    for f in cand.get("files") or []:
        lines.append(f"{f.get('name')}  sha256 {f.get('sha256') or '(hashed while copied)'}")
    passed = [c for c in checks if c.get("ok") and not c.get("skipped")]
    lines.append(f"checks: {len(passed)} of {len(checks)} passed: " + " · ".join(f"✔ {c.get('name')}" for c in passed))
    for c in checks:
        if c.get("skipped") or not c.get("ok"):
            mark = "–" if c.get("skipped") else "✖"
            lines.append(f"  {mark} {c.get('name')}" + (f": {c.get('detail')}" if c.get("detail") else ""))
    return Confirmation(
        title=f"Deploy run {req.run_id} into {req.model}?", action=f"Deploy as {to}",
        change=(f"run {req.run_id}, {cand.get('checkpoint') or 'best'} checkpoint", f"{req.model} {to} (inactive)"),
        details="\n".join(clean(x) for x in lines),
    )  # fmt: skip


class RunPicker(ModalScreen[DeployRequest | None]):
    """Runs newest first; Enter on one deploys its best checkpoint into the model named above."""

    DEFAULT_CSS = """
    RunPicker { align: center middle; }
    RunPicker > Vertical {
        width: 110; max-width: 98%; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    RunPicker #picker-title { text-style: bold; }
    RunPicker #picker-label { margin-top: 1; color: $text-muted; }
    RunPicker DataTable { height: 1fr; margin-top: 1; }
    RunPicker #picker-error { color: $error; text-style: bold; height: auto; }
    RunPicker #picker-hint { color: $text-muted; height: auto; }
    """
    AUTO_FOCUS = "#picker-runs"  # what has the focus when it opens (not the first focusable)
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "cancel", "Cancel", id="picker.cancel")]

    class Read(Message):
        def __init__(self, choices: list[RunChoice] | None, error: str | None = None) -> None:
            super().__init__()
            self.choices = choices
            self.error = error

    def __init__(self, ws: Workspace, model: str | None = None) -> None:
        super().__init__()
        self.ws = ws
        self.model = model or ""
        self.choices: dict[str, RunChoice] = {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Deploy a run's best checkpoint as a new version", id="picker-title", markup=False)
            yield Static("into the model (Tab to change it):", id="picker-label", markup=False)
            yield Input(self.model, placeholder="model name (empty: the run's model kind)", id="picker-model",
                        compact=True)  # fmt: skip
            table: DataTable[Text] = DataTable(cursor_type="row", id="picker-runs")
            yield table
            yield Static("", id="picker-error")
            yield Static("Enter on a run: a dry run (every check, nothing changes), then the confirmation · "
                         "Tab: the model box · Esc cancels", id="picker-hint", markup=False)  # fmt: skip

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in (("run", "run", 18), ("kind", "model kind", 12), ("status", "status", 8),
                                  ("best", "best checkpoint", 28)):  # fmt: skip
            table.add_column(label, key=key, width=width)
        table.loading = True
        table.focus()
        self._read()

    @work(thread=True, exclusive=True, group="run-picker", exit_on_error=False, description="read runs")
    def _read(self) -> None:
        try:
            self.post_message(self.Read(read_choices(self.ws)))
        except Exception as exc:  # noqa: BLE001 - said in the screen
            self.post_message(self.Read(None, f"{type(exc).__name__}: {exc}"))

    @on(Read)
    def _got(self, message: Read) -> None:
        table = self.query_one(DataTable)
        table.loading = False
        if message.choices is None:
            self._say(f"reading the runs failed: {message.error}")
            return
        self.choices = {c.run_id: c for c in message.choices}
        for c in message.choices:
            best = plain(c.best, "" if c.deployable else "dim")
            table.add_row(plain(c.run_id), plain(c.kind or "-"), plain(c.status), best, key=c.run_id)
        ready = [i for i, c in enumerate(message.choices) if c.deployable]
        if ready:
            table.move_cursor(row=ready[0])  # the newest run that can be deployed
        if not message.choices:
            self._say(f"no runs in {self.ws.runs_dir}: train one first (trainledger train MODEL)")

    def _say(self, text: str) -> None:
        self.query_one("#picker-error", Static).update(plain(text))

    @on(DataTable.RowSelected, "#picker-runs")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        choice = self.choices.get(str(event.row_key.value))
        if choice is None:
            return
        if not choice.deployable:
            self._say(choice.why or f"{choice.run_id}: {choice.best}")
            return
        model = self.query_one("#picker-model", Input).value.strip() or (choice.kind or "")
        try:
            validate_id(model, "model name")
        except InvalidId as exc:
            self._say(str(exc))
            return
        self.dismiss(DeployRequest(model, choice.run_id))

    @on(Input.Submitted, "#picker-model")
    def _model_entered(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(DataTable).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
