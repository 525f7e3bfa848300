"""What the Versions pane draws, as plain functions of registry records: tested without a terminal.

Tree lines (a model, a version), the status glyph and its look, the details of one version,
a model's history, and the confirmations of the live operations (what changes from and to,
the checksums and checks, what traffic moves). Every string from the registry (names,
reasons, paths, metric names, check details) becomes `plain` Text: never markup, never a
terminal control. Colours come from a `Look` built from the theme; each status also has a
text style (bold, italic, reverse), so states stay apart in the mono theme and under NO_COLOR.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text

from trainledger.console.screens.confirm import Confirmation
from trainledger.console.text import clean, plain
from trainledger.engines.registry.cli import CHECK_GLYPHS, STATUS_GLYPHS
from trainledger.engines.registry.types import AuditEntry, Check, ModelState, Version

# status -> (theme variable, text style); the text style carries the state where colour is gone
STATUS_LOOK: dict[str, tuple[str | None, str]] = {
    "active": ("success", "bold"),
    "canary": ("warning", "bold"),
    "aborted": ("warning", "italic"),
    "corrupt": ("error", "bold reverse"),
    "rolled_back": (None, "italic"),
    "inactive": (None, "dim"),
}
ROLLBACK_MARK = "◂ rollback target"
CHECKING, OK = "checking", "ok"  # an artifact's re-hash state; anything else is the problem found
MANY_AUDIT = 12  # audit entries shown in the details (H shows them all)


@dataclass(frozen=True)
class Look:
    """Rich styles for the statuses and a few roles, read from the theme once per restyle."""

    status: Mapping[str, Style] = field(default_factory=dict)
    good: Style = Style()
    bad: Style = Style(bold=True)
    muted: Style = Style(dim=True)
    head: Style = Style(bold=True)

    def of(self, status: str) -> Style:
        return self.status.get(status, Style())


def look_from(colours: Mapping[str, Style | None]) -> Look:
    """A Look from the theme's colours by variable name (success, warning, error)."""

    def style(var: str | None, attrs: str) -> Style:
        base = Style.parse(attrs) if attrs else Style()
        colour = colours.get(var) if var else None
        return colour + base if colour else base

    return Look(
        status={s: style(var, attrs) for s, (var, attrs) in STATUS_LOOK.items()},
        good=style("success", ""), bad=style("error", "bold"),
    )  # fmt: skip


def glyph(status: str) -> str:
    return STATUS_GLYPHS.get(status, "?")


def status_text(v: Version, m: ModelState | None) -> str:
    """`canary 10 %`, `rolled back`, `active` ...: the status word, with the canary's share."""
    if m is not None and v.version == m.canary and v.status == "canary":
        return f"canary {m.traffic} %"
    return v.status.replace("_", " ")


def when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def ago(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    s = max(0, int(now - t))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def short_sha(sha: str, width: int = 12) -> str:
    return sha if len(sha) <= width else sha[:width] + "…"


def size_text(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def epoch_words(v: Version) -> str:
    """`epoch 6 · the best, not the last` (or what is known of it)."""
    if v.epoch is None:
        return "no epoch (deployed from a folder)" if v.run_id is None else "epoch unknown"
    parts = [f"epoch {v.epoch}"]
    marks = []
    if v.is_best is not None:
        marks.append("the best" if v.is_best else "not the best")
    if v.is_last is not None:
        marks.append("the last" if v.is_last else "not the last")
    return " · ".join(parts + ([", ".join(marks)] if marks else []))


# --------------------------------------------------------------------------- tree lines

def model_line(m: ModelState, look: Look) -> Text:
    """`lora-lm  ✔ v3  ◌ v4 10 %`, or after an abort `lora-lm  ⚠ aborted, serving v3`."""
    t = plain(m.name, look.head)
    if m.condition == "aborted":
        t.append(f"  {glyph('aborted')} ", look.of("aborted"))
        t.append_text(plain(f"aborted, serving {m.active or 'nothing'}", look.of("aborted")))
    elif m.active:
        t.append(f"  {glyph('active')} ", look.of("active"))
        t.append_text(plain(m.active, look.of("active")))
    else:
        t.append("  nothing active", look.muted)
    if m.canary:
        t.append(f"  {glyph('canary')} ", look.of("canary"))
        t.append_text(plain(f"{m.canary} {m.traffic} %", look.of("canary")))
    return t


def version_line(v: Version, m: ModelState | None, look: Look, wide: bool = False, mark: Text | None = None) -> Text:
    """`✔ v3  active`, `· v2  inactive  ◂ rollback target`; with `wide` the epoch and the run too;
    `mark` (the stored report's verification state) after the status.

    Built in as few pieces as it can: a rebuild makes 2,000 of these."""
    t = Text(end="")
    t.append(clean(f"{glyph(v.status)} {v.version}  {status_text(v, m)}"), look.of(v.status))
    if mark is not None:
        t.append("  ")
        t.append_text(mark)
    if m is not None and v.version == m.previous:
        t.append(f"  {ROLLBACK_MARK}", look.head)
    if v.pruned_at is not None:
        t.append("  pruned", look.muted)
    if wide and (v.epoch is not None or v.run_id):
        marks = (" best" if v.is_best else "") + (" last" if v.is_last else "")
        epoch = "" if v.epoch is None else f"  e{v.epoch}{marks}"
        t.append(clean(epoch + (f"  {v.run_id}" if v.run_id else "")), look.muted)
    return t


# --------------------------------------------------------------------------- details

def names_version(e: AuditEntry, version: str) -> bool:
    """The entry concerns `version`: moved from or to it, or found it corrupt."""
    corrupt = e.details.get("corrupt") if isinstance(e.details, dict) else None
    return version in (e.from_version, e.to_version) or (isinstance(corrupt, dict) and version in corrupt)


def live_words(active: str | None, canary: str | None, traffic: int) -> str:
    text = f"active {active or 'none'}"
    return text + (f", canary {canary} at {traffic} %" if canary else "")


def audit_line(e: AuditEntry, look: Look) -> Text:
    t = Text(f"{when(e.time)}  ", style=look.muted, end="")
    t.append_text(plain(f"{e.user}@{e.host}  ", look.muted))
    t.append_text(plain(f"{e.action:<8} {e.from_version or '-'} -> {e.to_version or '-'}"))
    if e.reason:
        t.append_text(plain(f'  "{e.reason}"'))
    t.append_text(plain(f"  [{live_words(e.active, e.canary, e.traffic)}]", look.muted))
    return t


def check_line(c: Check, look: Look) -> Text:
    key = "skipped" if c.skipped else ("ok" if c.ok else "failed")
    style = look.good if key == "ok" else (look.bad if key == "failed" else look.muted)
    t = Text(f"  {CHECK_GLYPHS[key]} ", style=style, end="")
    t.append_text(plain(c.name + (f": {c.detail}" if c.detail else "")))
    return t


def artifact_line(name: str, sha: str, size: int, state: str, look: Look, sha_width: int) -> Text:
    """`✔ model.safetensors  392 B  ok`, and its sha256 on the line below."""
    if state == OK:
        mark, style, said = "✔", look.good, "ok"
    elif state == CHECKING:
        mark, style, said = "…", look.muted, "checking"
    else:
        mark, style, said = glyph("corrupt"), look.of("corrupt"), f"corrupt: {state}"
    t = Text(f"  {mark} ", style=style, end="")
    t.append_text(plain(f"{name}  {size_text(size)}  "))
    t.append_text(plain(said, style))
    t.append("\n")
    t.append_text(plain(f"    sha256 {short_sha(sha, sha_width)}", look.muted))
    return t


def details_text(v: Version, m: ModelState | None, audit: Sequence[AuditEntry], hashed: Mapping[str, str],
                 look: Look, now: float, width: int = 80, provenance: Text | None = None) -> Text:  # fmt: skip
    """Everything about one version: files and their re-hash state, checks, its stored report's
    verification (`provenance`), where it came from, metrics, how to remake it, and its audit
    entries (newest first)."""
    sha_width = 64 if width >= 80 else max(12, width - 18)
    out = Text(end="")

    def line(*parts: Text) -> None:
        for p in parts:
            out.append_text(p)
        out.append("\n")

    def section(title: str) -> None:
        out.append("\n")
        out.append(title + "\n", look.head)

    head = plain(f"{v.model} {v.version}  ", look.head)
    head.append_text(plain(f"{glyph(v.status)} {status_text(v, m)}", look.of(v.status)))
    if m is not None and v.version == m.previous:
        head.append(f"  {ROLLBACK_MARK}", look.head)
    line(head)
    line(plain(f"  {v.kind or 'kind unknown'} · created {when(v.created_at)} · "
               f"deployed {when(v.deployed_at) if v.deployed_at else 'never'}", look.muted))  # fmt: skip
    line(plain(f"  checksum {short_sha(v.checksum, sha_width)}"))
    if v.corrupt_detail:
        line(plain(f"  {glyph('corrupt')} corrupt: {v.corrupt_detail}", look.of("corrupt")))
    section(f"artifacts  (last matched {ago(v.verified_at, now)})" if v.verified_at else "artifacts")
    if v.pruned_at is not None:
        line(plain(f"  pruned {when(v.pruned_at)}: the files are gone, the record stays", look.muted))
    else:
        for a in v.artifacts:
            line(artifact_line(a.name, a.sha256, a.bytes, hashed.get(a.sha256, CHECKING), look, sha_width))
    section("sanity checks")
    for c in v.checks:
        line(check_line(c, look))
    if not v.checks:
        line(plain("  none recorded", look.muted))
    if provenance is not None:
        section("provenance (the stored report, verified now)")
        line(Text("  ", end=""), Text("\n  ", end="").join(provenance.split("\n")))
    section("source")
    line(plain(f"  run        {v.run_id}" if v.run_id else f"  from       {v.source}"))
    if v.checkpoint:
        line(plain(f"  checkpoint {v.checkpoint} · {epoch_words(v)}" + (f" · step {v.step}" if v.step else "")))
    line(plain(f"  dataset    {v.dataset_path or 'not recorded'}"))
    if v.dataset_sha256:
        line(plain(f"  sha256     {short_sha(v.dataset_sha256, sha_width)}"))
    extra = [f"{v.training_samples:,} samples" if v.training_samples is not None else "",
             f"base {v.base_model}" if v.base_model else ""]  # fmt: skip
    if any(extra):
        line(plain("  " + " · ".join(x for x in extra if x)))
    if v.metrics:
        section("metrics")
        name_w = min(28, max(len(clean(k)) for k in v.metrics))
        for k in sorted(v.metrics):
            line(plain(f"  {clean(k):<{name_w}}  {v.metrics[k]:.6g}" if isinstance(v.metrics[k], (int, float))
                       else f"  {clean(k):<{name_w}}  {v.metrics[k]}"))  # fmt: skip
    section("reproduce")
    line(plain(f"  {v.reproduce}" if v.reproduce else "  not known (deployed from a folder)"))
    mine = [e for e in audit if e.model == v.model and names_version(e, v.version)]
    section(f"audit  ({len(mine)} entr{'y' if len(mine) == 1 else 'ies'}; H: the model's history)")
    for e in sorted(mine, key=lambda e: e.id, reverse=True)[:MANY_AUDIT]:
        line(Text("  ", end=""), audit_line(e, look))
    out.rstrip()
    return out


def model_details(m: ModelState, versions: Sequence[Version], look: Look) -> Text:
    """The model node's details: what is live, the rollback target, the version count, the keys."""
    t = plain(m.name, look.head)
    t.append_text(plain(f"  {m.kind or 'kind unknown'}", look.muted))
    rows = [plain(f"  {live_words(m.active, m.canary, m.traffic)}"), plain(f"  rollback target {m.previous or 'none'}")]
    if m.condition == "aborted":
        why = f": {m.condition_reason}" if m.condition_reason else ""
        rows.append(plain(f"  {glyph('aborted')} aborted, serving {m.active or 'nothing'}{why}", look.of("aborted")))
    rows.append(plain(f"  {len(versions)} version{'s' if len(versions) != 1 else ''}", look.muted))
    rows.append(Text("\n  Select a version for its files, checks, run and audit; H: the model's history.",
                     style=look.muted))  # fmt: skip
    for row in rows:
        t.append("\n")
        t.append_text(row)
    return t


def history_text(m: ModelState, audit: Sequence[AuditEntry], look: Look) -> Text:
    """A model's audit log, newest first, each with what was live after it (the H screen)."""
    mine = sorted((e for e in audit if e.model == m.name), key=lambda e: e.id, reverse=True)
    t = model_line(m, look)
    t.append("\n")
    t.append_text(plain(f"{len(mine)} audit entr{'y' if len(mine) == 1 else 'ies'}, newest first; "
                        "each with what was live after it", look.muted))  # fmt: skip
    t.append("\n")
    for e in mine:
        t.append("\n")
        t.append_text(audit_line(e, look))
        figures = e.details.get("figures") if isinstance(e.details, dict) else None
        if figures:
            t.append("\n")
            t.append_text(plain(f"    measured: {figures}", look.muted))
    return t


# --------------------------------------------------------------------------- confirmations

def _bytes_said(v: Version, hashed: Mapping[str, str]) -> str:
    states = [hashed.get(a.sha256, CHECKING) for a in v.artifacts]
    if v.pruned_at is not None:
        return "its artifacts were pruned: the store will refuse it"
    if all(s == OK for s in states):
        return "re-hashed now: every artifact matches"
    if any(s not in (OK, CHECKING) for s in states):
        return "re-hashed now: CORRUPT, the store will refuse it"
    return "not re-hashed here yet; the store re-hashes it before it goes live"


def _checks_said(v: Version) -> str:
    if not v.checks:
        return "checks: none recorded"
    ok = sum(1 for c in v.checks if c.ok and not c.skipped)
    skipped = sum(1 for c in v.checks if c.skipped)
    failed = [c.name for c in v.checks if not c.ok and not c.skipped]
    said = f"checks: {ok} of {len(v.checks)} passed" + (f", {skipped} skipped" if skipped else "")
    return said + (f", FAILED: {', '.join(failed)}" if failed else "")


def _about(v: Version, hashed: Mapping[str, str]) -> list[str]:
    return [f"{v.version} sha256 {v.checksum}", f"  {_bytes_said(v, hashed)}", f"  {_checks_said(v)}",
            f"  {v.run_id and f'run {v.run_id}, ' or ''}{epoch_words(v)}"]  # fmt: skip


def promote_ask(m: ModelState, target: Version, hashed: Mapping[str, str]) -> Confirmation:
    """Promote: the canary (its share grows to 100 %) or a named version (all traffic at once,
    type its name: it skips the canary)."""
    on_canary = m.canary == target.version
    moved = 100 - m.traffic if on_canary else 100
    before = live_words(m.active, m.canary, m.traffic)
    after = f"active {target.version}; rollback target {m.active or m.previous or 'none'}"
    lines = [f"traffic: {moved} % of requests move to {target.version}"
             + (f" (it has {m.traffic} % on canary now)" if on_canary else " at once: it was never on canary")]
    if m.canary and not on_canary:
        lines.append(f"the canary {m.canary} ({m.traffic} %) is cleared")
    lines += _about(target, hashed)
    return Confirmation(
        title=f"Promote {m.name} {target.version}?", action=f"Promote {target.version}",
        change=(before, after), details="\n".join(lines),
        type_to_confirm=None if on_canary else target.version,
    )  # fmt: skip


def rollback_ask(m: ModelState, target: Version, hashed: Mapping[str, str]) -> Confirmation:
    lines = [f"traffic: all requests (100 %) move to {target.version} at once, no canary steps"]
    if m.canary and m.canary != target.version:
        lines.append(f"the canary {m.canary} ({m.traffic} %) is cleared")
    if m.active:
        lines.append(f"{m.active} is marked rolled back")
    if target.version != m.previous:
        lines.append(f"{target.version} is not the rollback target ({m.previous or 'none'}): chosen by hand")
    lines += _about(target, hashed)
    return Confirmation(
        title=f"Roll back {m.name} to {target.version}?", action=f"Roll back to {target.version}",
        change=(live_words(m.active, m.canary, m.traffic), f"active {target.version}"), details="\n".join(lines),
    )  # fmt: skip


def canary_ask(m: ModelState, target: Version, traffic: int, hashed: Mapping[str, str]) -> Confirmation:
    before = m.traffic if m.canary == target.version else 0
    lines = [f"traffic: {target.version} {before} % -> {traffic} %; {m.active or 'nothing'} keeps {100 - traffic} %"]
    lines += _about(target, hashed)
    return Confirmation(
        title=f"Canary {m.name} {target.version} at {traffic} %?", action=f"Canary at {traffic} %",
        change=(live_words(m.active, m.canary, m.traffic), live_words(m.active, target.version, traffic)),
        details="\n".join(lines),
    )  # fmt: skip


def abort_ask(m: ModelState) -> Confirmation:
    lines = [f"traffic: the canary {m.canary}'s {m.traffic} % go back to {m.active or 'nothing'} (100 %)",
             f"{m.canary} is marked aborted; the model shows \"aborted, serving {m.active}\" until an operator acts",
             f"{m.active} is not touched"]  # fmt: skip
    return Confirmation(
        title=f"Abort the canary of {m.name}?", action=f"Abort {m.canary}", cancel="Keep the canary",
        change=(live_words(m.active, m.canary, m.traffic), f"active {m.active}; aborted, serving {m.active}"),
        details="\n".join(lines),
    )  # fmt: skip


def verify_said(results: Sequence[tuple[Version, str | None]]) -> str:
    """What `verify` found, in a sentence (the V key's notification)."""
    bad = [(v, p) for v, p in results if p]
    if not results:
        return "nothing to verify: no kept artifacts"
    if not bad:
        return f"{len(results)} version(s) re-hashed: every artifact matches its sha256"
    listed = "; ".join(f"{v.model} {v.version}: {p}" for v, p in bad)
    return f"{len(bad)} of {len(results)} version(s) corrupt (refused from now on): {listed}"
