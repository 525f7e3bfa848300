"""The Versions pane: each model's versions as a tree, the chosen version's details, and the keys
that move what is live (promote, roll back, canary, abort, deploy), each behind the confirmation.

Nothing here touches the registry on the UI thread: a thread worker reads one consistent
`Registry.snapshot()` after each RegistryChanged from the watcher (coalesced, never two at
once, so a CLI change in another terminal shows within a second); another re-hashes the
chosen version's artifacts; each operation opens its own Registry in a worker and closes it.
`D` deploys through the CLI as a child process (`trainledger registry deploy ... --json`,
first `--dry-run`), because its probe imports torch and this process never does. Refusals
(RegistryError) and worker failures are said as plain-text notifications. Under `--readonly`
the keys that write are hidden and refused. The keys' actions are in versions_actions.py,
the drawing in widgets/versions_render.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from trainledger.console.messages import RegistryChanged, ReportsChanged
from trainledger.console.panes.versions_actions import VersionsActions
from trainledger.console.panes.versions_provenance import VersionsProvenance
from trainledger.console.styles import theme_style
from trainledger.console.text import clean, notify_plain, plain
from trainledger.console.widgets import versions_render as render
from trainledger.engines.registry.types import AuditEntry, ModelState, Version
from trainledger.engines.workspace import Workspace

Key = tuple[str, str | None]  # (model, version); version None for a model's own line
FIRST_LINES = 200  # tree lines added before the first frame of a rebuild; the rest right after it


class RegistryRead(Message):
    """A worker read the registry; `models_only` is the first, quick part of the very first read."""

    def __init__(self, snapshot: tuple[list[ModelState], list[Version], list[AuditEntry]] | None,
                 error: str | None = None, models_only: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.snapshot = snapshot
        self.error = error
        self.models_only = models_only


class Hashed(Message):
    def __init__(self, states: dict[str, str]) -> None:
        super().__init__()
        self.states = states  # sha256 -> render.OK or the problem found


class VersionsPane(VersionsProvenance, VersionsActions, Widget):
    """The model tree on the left, the chosen version's details on the right."""

    DEFAULT_CSS = """
    VersionsPane { height: 1fr; }
    VersionsPane #ver-head { height: 1; padding: 0 1; }
    VersionsPane > Horizontal { height: 1fr; }
    VersionsPane #ver-tree { width: 36; height: 1fr; }
    VersionsPane.-wide #ver-tree { width: 64; }
    VersionsPane #ver-detail-box { width: 1fr; height: 1fr; padding: 0 1; }
    VersionsPane #ver-detail { height: auto; }
    """
    WANTS = (RegistryChanged, ReportsChanged)
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("P", "promote", "Promote", id="versions.promote"),
        Binding("R", "rollback", "Roll back", id="versions.rollback"),
        Binding("C", "canary", "Canary", id="versions.canary"),
        Binding("A", "abort", "Abort canary", id="versions.abort"),
        Binding("D", "deploy", "Deploy run", id="versions.deploy"),
        Binding("V", "verify", "Verify", id="versions.verify"),
        Binding("H", "history", "History", id="versions.history"),
        Binding("enter", "open_run", "Open its run's curves", id="versions.open_run", show=False),
    ]

    def __init__(self, workspace: Workspace, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.clock = clock
        self.models: dict[str, ModelState] = {}
        self.versions: dict[Key, Version] = {}
        self.audit: list[AuditEntry] = []
        self.hashed: dict[str, str] = {}
        self.look = render.Look()
        self.loads = 0  # snapshots read (tests and benchmarks wait on it)
        self.read_error: str | None = None
        self._lines: dict[Key, Any] = {}
        self._build = 0  # tree rebuilds so far: a late _grow of an older build does nothing
        self._collapsed: set[Key] = set()  # models the user folded, kept across rebuilds
        self._shape: list[Key] = []
        self._reading = self._read_again = False
        self._hashing: Key | None = None
        self._hash_next: Key | None = None
        self._after_hash: list[tuple[Key, set[str], Callable[[], None]]] = []  # asks waiting on a re-hash
        self._registered: frozenset[str] = frozenset()
        self._init_provenance()

    @property
    def readonly(self) -> bool:
        return bool(getattr(self.app, "readonly", False))

    def compose(self) -> ComposeResult:
        yield Static("", id="ver-head")
        with Horizontal():
            tree: Tree[Key] = Tree("registry", id="ver-tree")
            tree.show_root = False
            tree.guide_depth = 2
            yield tree
            with VerticalScroll(id="ver-detail-box"):
                yield Static("", id="ver-detail")

    def on_mount(self) -> None:
        if not self.query("#ver-tree"):  # a lazy pane whose children went with a quit before it finished mounting
            return
        watcher = getattr(self.app, "watcher", None)
        if watcher is not None:  # mounted lazily, after the app started its watcher
            watcher.subscribe(self, *self.WANTS)
        self.look = self._theme_look()
        self.plook = self._provenance_look()
        self.set_class(self.app.size.width >= 140, "-wide")
        self._head()
        self.request_read()

    def on_resize(self) -> None:
        wide = self.size.width >= 140
        if wide != self.has_class("-wide"):
            self.set_class(wide, "-wide")
            self._shape = []
            self._sync_tree()
        self.call_after_refresh(self._render_detail)

    # ------------------------------------------------------------------ reading
    @on(RegistryChanged)
    def _registry_changed(self, _: RegistryChanged) -> None:
        self.request_read()

    def request_read(self) -> None:
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        self._read(first=self.loads == 0 and not self.models)

    @work(thread=True, group="versions-read", exit_on_error=False, description="read the registry")
    def _read(self, first: bool = False) -> None:
        """One consistent snapshot; the very first read says the models (what is live) before it,
        so a registry of thousands of versions shows every model at once."""
        from trainledger.engines.registry.store import Registry

        snap, error = None, None
        try:
            with Registry(self.workspace) as reg:
                if first:
                    self.post_message(RegistryRead((reg.models(), [], []), models_only=True))
                snap = reg.snapshot()
        except Exception as exc:  # noqa: BLE001 - said once; the next change reads again
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.post_message(RegistryRead(snap, error))

    @on(RegistryRead)
    def _got(self, message: RegistryRead) -> None:
        if message.models_only:
            if not self.loads and message.snapshot:
                self.models = {m.name: m for m in message.snapshot[0]}
                self._sync_tree()
                self._head()
            return
        self._reading = False
        if message.error is not None and message.error != self.read_error:
            notify_plain(self, f"reading {self.workspace.registry_dir} failed: {message.error}\n"
                         "it is read again on the next change", title="Versions", severity="error", timeout=10)
        self.read_error = message.error
        if message.snapshot is not None:
            models, versions, audit = message.snapshot
            self.loads += 1
            self.models = {m.name: m for m in models}
            ordered = sorted(versions, key=lambda v: (v.model, -v.seq))
            self.versions = {(v.model, v.version): v for v in ordered}
            self.audit = audit
            self._sync_tree()
            self._head()
            self._render_detail()
            self._tell_registered({v.run_id for v in versions if v.run_id})
            self._rehash(self.cursor_key())
            self.request_assess()
        if self._read_again:
            self._read_again = False
            self.request_read()

    def _tell_registered(self, run_ids: set[str]) -> None:
        """The Curves pane marks runs that have a registered version (any pane with show_registered)."""
        ids = frozenset(run_ids)
        if ids == self._registered:
            return
        self._registered = ids
        for _, pane in self.app.panes():
            if hasattr(pane, "show_registered"):
                pane.show_registered(ids)

    # ------------------------------------------------------------------ drawing
    def _theme_look(self) -> render.Look:
        return render.look_from({v: theme_style(self.app, v) for v in ("success", "warning", "error")})

    def _head(self) -> None:
        n = len(self.versions)
        text = f"{len(self.models)} model{'s' if len(self.models) != 1 else ''} · {n:,} version{'s' if n != 1 else ''}"
        text += " · read-only" if self.readonly else ""
        self.query_one("#ver-head", Static).update(plain(text + " · enter: a version's run · ? keys"))

    def set_labels(self, changes: Iterable[tuple[TreeNode[Key], Text]]) -> None:
        """Relabel these lines. When one gets wider or narrower, the tree is re-measured:
        Textual's Tree measures its lines (its horizontal scroll range) only when it rebuilds
        them, which `set_label` does not do (the rebuild runs after the relabels it queued)."""
        resized = False
        for node, label in changes:
            resized |= label.cell_len != node.label.cell_len
            node.set_label(label)
        if resized:
            tree = self.query_one("#ver-tree", Tree)
            tree.call_later(tree.notify_style_update)

    def _label(self, key: Key, wide: bool) -> Text:
        model, version = key
        if version is None:
            return render.model_line(self.models[model], self.look)
        return render.version_line(self.versions[key], self.models.get(model), self.look, wide, self.mark(key))

    def _sync_tree(self) -> None:
        """Rebuild when the set of versions changed, else relabel only the lines that differ.

        A rebuild adds the first FIRST_LINES lines (more than any screen shows) before the
        first frame and the rest right after it: 2,000 versions draw as fast as 200."""
        tree: Tree[Key] = self.query_one("#ver-tree", Tree)
        wide = self.has_class("-wide")
        per_model: dict[str, list[Key]] = {name: [] for name in sorted(self.models)}
        for k in self.versions:  # newest first within each model
            if k[0] in per_model:
                per_model[k[0]].append(k)
        shape = [key for name, keys in per_model.items() for key in ((name, None), *keys)]
        if shape == self._shape:
            labels = ((node, self._label(key, wide)) for key, node in self._lines.items())
            self.set_labels((node, label) for node, label in labels if label != node.label)
            return
        keep = self.cursor_key()
        if keep is None and shape:  # first: the first model's active version, else its newest
            first = shape[0][0]
            keep = (first, self.models[first].active)
            if keep not in self.versions:
                keep = shape[1] if len(shape) > 1 and shape[1][0] == first else shape[0]
        self._collapsed = {k for k, n in self._lines.items() if k[1] is None and not n.is_expanded}
        tree.clear()
        self._lines = {}
        self._shape = shape
        self._build += 1
        self._add_lines(shape[:FIRST_LINES], wide)
        self.call_after_refresh(self._grow, self._build, shape[FIRST_LINES:], keep)

    def _add_lines(self, keys: list[Key], wide: bool) -> None:
        tree: Tree[Key] = self.query_one("#ver-tree", Tree)
        for key in keys:
            if key[1] is None:
                self._lines[key] = tree.root.add(self._label(key, wide), data=key, expand=key not in self._collapsed)
            else:
                self._lines[key] = self._lines[(key[0], None)].add_leaf(self._label(key, wide), data=key)

    def _grow(self, build: int, later: list[Key], keep: Key | None) -> None:
        """The lines below the first screenful, after the first frame; then the cursor."""
        if build != self._build:
            return  # rebuilt since
        self._add_lines(later, self.has_class("-wide"))
        target = self._lines.get(keep) if keep else None
        if target is not None:
            self.call_after_refresh(self._move_to, target)

    def _move_to(self, node: Any) -> None:
        self.query_one("#ver-tree", Tree).move_cursor(node)
        self._render_detail()
        self._rehash(self.cursor_key())

    def select_version(self, model: str, version: str | None = None) -> bool:
        """Put the cursor on a model's line or one of its versions; False if it is not shown."""
        node = self._lines.get((model, version))
        if node is None:
            return False
        self._move_to(node)
        return True

    def cursor_key(self) -> Key | None:
        if not self.is_mounted:
            return None
        node = self.query_one("#ver-tree", Tree).cursor_node
        return node.data if node is not None and node.data is not None else None

    def selected(self) -> tuple[ModelState | None, Version | None]:
        key = self.cursor_key()
        if key is None:
            return None, None
        return self.models.get(key[0]), self.versions.get(key) if key[1] else None

    def _render_detail(self) -> None:
        if not self.is_mounted:
            return
        box = self.query_one("#ver-detail", Static)
        m, v = self.selected()
        if not self.models:
            text = (f"No models in {self.workspace.registry_dir} yet.\n\nPress D to deploy a run's best "
                    "checkpoint, or from a shell:\n  trainledger registry deploy MODEL --run RUN")  # fmt: skip
            box.update(plain(text) if not self.read_error else plain(f"⚠ {self.read_error}"))
        elif v is not None:
            width = self.query_one("#ver-detail-box").size.width or 80
            box.update(render.details_text(v, m, self.audit, self.hashed, self.look, self.clock(), width,
                                           self.provenance_text((v.model, v.version))))  # fmt: skip
        elif m is not None:
            box.update(render.model_details(m, [x for k, x in self.versions.items() if k[0] == m.name], self.look))

    @on(Tree.NodeHighlighted, "#ver-tree")
    def _cursor_moved(self, _: Tree.NodeHighlighted) -> None:
        self._render_detail()
        self._rehash(self.cursor_key())

    @on(Tree.NodeSelected, "#ver-tree")
    def _node_selected(self, event: Tree.NodeSelected) -> None:
        if event.node.data is not None and event.node.data[1] is not None:
            self.action_open_run()

    # ------------------------------------------------------------------ re-hashing the chosen version
    def _rehash(self, key: Key | None) -> None:
        """Re-hash the chosen version's artifacts: one worker at a time, the newest choice next."""
        v = self.versions.get(key) if key and key[1] else None
        if v is None or v.pruned_at is not None:
            return
        if self._hashing is not None:
            self._hash_next = key
            return
        for a in v.artifacts:
            self.hashed.pop(a.sha256, None)
        self._hashing = key
        self._hash(v)

    @work(thread=True, group="versions-hash", exit_on_error=False, description="re-hash artifacts")
    def _hash(self, v: Version) -> None:
        from trainledger.engines.registry import blobs

        states: dict[str, str] = {}
        try:
            for a in v.artifacts:
                states[a.sha256] = blobs.check(self.workspace.registry_dir, a.sha256, a.bytes) or render.OK
        except Exception as exc:  # noqa: BLE001 - shown as the artifact's state
            states = {a.sha256: f"could not re-hash: {exc}" for a in v.artifacts}
        finally:
            self.post_message(Hashed(states))

    def hashed_then(self, v: Version, then: Callable[[], None]) -> None:
        """Call `then` once `v`'s artifacts were re-hashed here (at once if they were since it was chosen)."""
        shas = {a.sha256 for a in v.artifacts}
        if v.pruned_at is not None or shas <= self.hashed.keys():
            then()
            return
        key: Key = (v.model, v.version)
        self._after_hash.append((key, shas, then))
        if self._hashing != key:
            self._rehash(key)

    @on(Hashed)
    def _hashed(self, message: Hashed) -> None:
        self.hashed.update(message.states)
        self._hashing = None
        self._render_detail()
        ready = [w for w in self._after_hash if w[1] <= self.hashed.keys()]
        self._after_hash = [w for w in self._after_hash if w not in ready]
        for _, _, then in ready:
            then()
        following, self._hash_next = self._hash_next, None
        if following is None and self._after_hash:  # a cursor move took the slot of an ask's target
            following = self._after_hash[0][0]
        if following is not None:
            self._rehash(following)

    # ------------------------------------------------------------------ the pane protocol
    def restyle(self) -> None:
        if self.is_mounted:
            self.call_after_refresh(self._restyle_now)

    def _restyle_now(self) -> None:
        self.look = self._theme_look()
        self.plook = self._provenance_look()
        self._shape = []
        self._sync_tree()
        self._render_detail()

    def summary(self) -> str:
        lines = [f"versions: {len(self.models)} model(s), {len(self.versions)} version(s)"]
        for _, m in sorted(self.models.items()):
            lines.append("  " + clean(render.model_line(m, render.Look()).plain))
        return "\n".join(lines)
