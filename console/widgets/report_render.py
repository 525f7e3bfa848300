"""What a stored report and its verdicts look like on screen, as plain functions: tested without a terminal.

A badge per claim (verified, unverified, stale, contradicted; "checking…" until the verdict
comes), the claim's value beside the one recomputed now and the evidence files it rests on,
the stored checks (pass, fail, skip, figure, reason), a one-line count, and the Versions
pane's short marker and details section. Every string from a report (keys, values, paths,
reasons) becomes `plain` Text: never markup, never a terminal control. Each state carries a
word and a text style besides its colour, so the states stay apart under NO_COLOR and in mono.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from rich.style import Style
from rich.table import Table
from rich.text import Text

from trainledger.console.provenance import CHECKING, ERROR, FAILING_CHECKS, MARKS, NO_REPORT, Assessment
from trainledger.console.text import clean, plain
from trainledger.engines.provenance.model import CONTRADICTED, STALE, UNVERIFIED, VERIFIED, Claim, Verdict

# state -> (glyph, theme variable, text style)
BADGES: dict[str, tuple[str, str | None, str]] = {
    VERIFIED: ("✓", "success", "bold"),
    UNVERIFIED: ("?", None, "dim"),
    STALE: ("⚠", "warning", "bold underline"),
    CONTRADICTED: ("✗", "error", "bold reverse"),
    CHECKING: ("…", None, "dim italic"),
    "pass": ("✓", "success", "bold"),
    "fail": ("✗", "error", "bold reverse"),
    "skip": ("-", None, "dim"),
    FAILING_CHECKS: ("✗", "error", "bold"),
    NO_REPORT: ("·", None, "dim"),
    ERROR: ("?", "warning", "italic"),
}
BADGE_WIDTH = 14
VALUE_CHARS = 120  # a value longer than this is cut (the report file holds all of it)
EVIDENCE_SHOWN = 4


@dataclass(frozen=True)
class Look:
    """Rich styles per state, read from the theme once per restyle."""

    states: Mapping[str, Style] = field(default_factory=dict)
    muted: Style = Style(dim=True)
    head: Style = Style(bold=True)

    def of(self, state: str) -> Style:
        return self.states.get(state, Style())


def look_from(colours: Mapping[str, Style | None]) -> Look:
    def style(var: str | None, attrs: str) -> Style:
        base = Style.parse(attrs) if attrs else Style()
        colour = colours.get(var) if var else None
        return colour + base if colour else base

    return Look(states={s: style(var, attrs) for s, (_, var, attrs) in BADGES.items()})


def badge(state: str, look: Look) -> Text:
    """`✓ verified`, `⚠ stale`, `✗ contradicted`, `? unverified`, `… checking`."""
    glyph = BADGES.get(state, ("?", None, ""))[0]
    word = "checking…" if state == CHECKING else state
    return Text(f"{glyph} {word}", style=look.of(state), end="")


def value_text(value: Any) -> str:
    """A claim's value as one line: counts with separators, floats in 6 digits, JSON otherwise."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    text = clean(text)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def when(t: float) -> str:
    if not t or not math.isfinite(t) or t <= 0:
        return "at an unknown time"
    try:
        return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "at an unknown time"


def _claim_cell(claim: Claim, verdict: Verdict | None, look: Look, sha_chars: int) -> Text:
    t = plain(claim.label or claim.key, look.head)
    if claim.label and claim.label != claim.key:
        t.append_text(plain(f"  ({claim.key})", look.muted))
    t.append("\n")
    t.append_text(plain(f"claimed {value_text(claim.value)}"))
    if verdict is not None and verdict.state in (VERIFIED, CONTRADICTED) and verdict.recomputed is not None:
        now = value_text(verdict.recomputed)
        if verdict.state == CONTRADICTED:
            t.append_text(plain(f"  ≠  files say {now}", look.of(CONTRADICTED)))
        elif now != value_text(claim.value):
            t.append_text(plain(f"  (recomputed {now})", look.muted))
    detail = verdict.detail if verdict is not None else ("" if claim.proven else claim.reason)
    if detail:
        t.append("\n")
        t.append_text(plain(detail, look.of(verdict.state) if verdict and verdict.state == STALE else look.muted))
    for ev in claim.evidence[:EVIDENCE_SHOWN]:
        sha = f"sha256 {ev.sha256[:sha_chars]}{'…' if len(ev.sha256) > sha_chars else ''}" if ev.sha256 else "no sha256"
        t.append("\n")
        t.append_text(plain(f"← {ev.path} · {sha}" + (f" · {ev.how}" if ev.how else ""), look.muted))
    if len(claim.evidence) > EVIDENCE_SHOWN:
        t.append("\n")
        t.append_text(plain(f"← and {len(claim.evidence) - EVIDENCE_SHOWN} more files", look.muted))
    return t


def claims_table(claims: Sequence[Claim], verdicts: Sequence[Verdict] | None, look: Look, width: int = 80,
                 pending: bool = True) -> Table | Text:  # fmt: skip
    """One row per claim: its badge, then the claim, its value (and the recomputed one) and its evidence.
    With no verdicts yet every badge says checking… (`pending`), or unverified when none will come."""
    if not claims:
        return Text("the report holds no claims", style=look.muted, end="")
    t = Table(box=None, show_header=False, expand=True, pad_edge=False, padding=(0, 1, 1, 0))
    t.add_column("badge", no_wrap=True, width=BADGE_WIDTH)
    t.add_column("claim", overflow="fold", ratio=1)
    sha_chars = 64 if width >= 140 else 12
    for i, claim in enumerate(claims):
        verdict = verdicts[i] if verdicts is not None and i < len(verdicts) else None
        state = verdict.state if verdict is not None else (CHECKING if pending else UNVERIFIED)
        t.add_row(badge(state, look), _claim_cell(claim, verdict, look, sha_chars))
    return t


def check_state(c: Mapping[str, Any]) -> str:
    ok = c.get("ok")
    return "pass" if ok is True else "fail" if ok is False else "skip"


def checks_table(checks: Sequence[Mapping[str, Any]], look: Look) -> Table | Text:
    """The checks the report stored: pass / fail / skip, the name, the figure, the reason."""
    if not checks:
        return Text("no checks stored in the report (trainledger check RUN runs them)", style=look.muted, end="")
    t = Table(box=None, show_header=True, header_style="bold", expand=True, pad_edge=False)
    t.add_column("", no_wrap=True, width=7)
    t.add_column("check", no_wrap=True, max_width=28, overflow="ellipsis")
    t.add_column("figure", no_wrap=True, max_width=24, overflow="ellipsis")
    t.add_column("reason", overflow="fold", ratio=1)
    for c in checks:
        state = check_state(c)
        t.add_row(badge(state, look), plain(c.get("name") or "?"), plain(value_text(c.get("figure"))),
                  plain(c.get("reason") or ""))  # fmt: skip
    return t


def counts_text(a: Assessment, look: Look) -> Text:
    """`7 claims: ✓ 5 verified · ⚠ 1 stale · ✗ 0 contradicted · ? 1 unverified · checks 3 pass, 1 fail`."""
    report = a.report
    if report is None:
        return Text("", end="")
    t = Text(f"{len(report.claims)} claim{'s' if len(report.claims) != 1 else ''}: ", end="")
    if a.verdicts is None:
        t.append_text(badge(CHECKING, look) if a.error is None else plain(f"not verified: {a.error}", look.of(ERROR)))
    else:
        for i, state in enumerate((VERIFIED, STALE, CONTRADICTED, UNVERIFIED)):
            n = sum(1 for v in a.verdicts if v.state == state)
            t.append(" · " if i else "")
            t.append(f"{BADGES[state][0]} {n} {state}", look.of(state) if n else look.muted)
    states = [check_state(c) for c in report.checks]
    if states:
        t.append(f"   checks: {states.count('pass')} pass, {states.count('fail')} fail, {states.count('skip')} skipped",
                 look.of("fail") if "fail" in states else Style())  # fmt: skip
    return t


def no_report_text(label: str, look: Look) -> Text:
    t = plain(f"No stored report for {label}.", look.head)
    t.append("\n\nMake one from the run's files (every claim with its evidence and sha256):\n")
    t.append_text(plain(f"  trainledger report {label}"))
    t.append("\nthen verify it against the files as they are now (CI can gate on its exit status):\n")
    t.append_text(plain(f"  trainledger verify {label}"))
    return t


# --------------------------------------------------------------------------- the Versions pane

def version_mark(a: Assessment | None, look: Look, wide: bool = False) -> Text:
    """The tree line's short column: ✓ verified, ⚠ stale/contradicted, ✗ checks failing, · no report."""
    state = CHECKING if a is None else a.state
    mark = MARKS.get(state, "?")
    style = look.of(state)
    if state == UNVERIFIED:
        style = look.of(VERIFIED)
    return Text(f"{mark} {state}" if wide else mark, style=style, end="")


def version_section(a: Assessment | None, look: Look, label: str) -> Text:
    """The details pane's provenance lines for one version."""
    t = Text(end="")
    if a is None:
        t.append_text(badge(CHECKING, look))
        t.append_text(plain("  verifying the stored report", look.muted))
        return t
    if a.report is None:
        if a.error:
            t.append_text(plain(f"? {a.error}", look.of(ERROR)))
        else:
            t.append_text(plain(f"· no stored report: trainledger report {label}", look.muted))
        return t
    t.append_text(plain(f"report made {when(a.report.made_at)} · ", look.muted))
    t.append_text(counts_text(a, look))
    for line in a.why():
        t.append("\n")
        t.append_text(plain(line, look.of(FAILING_CHECKS)))
    t.append("\n")
    t.append_text(plain(f"trainledger verify {label}: the claims and their files", look.muted))
    return t
