"""A report as text (aligned, a claim a line), JSON (Report.to_json) or Markdown (what a person
pastes into a pull request or a promotion decision).

Every string that came from a file (metric names, paths, reasons, the command) is data: its
control characters are replaced by visible marks (engines/safetext.clean) in every format but
JSON (which escapes them itself); in Markdown `|`, backticks, `<`, `>` and `*`/`_` are escaped
so a hostile name cannot break the table or inject markup.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from trainledger.engines.provenance.model import Claim, Report
from trainledger.engines.safetext import clean

VALUE_WIDTH = 40  # text output cuts values to this many characters
KEY_WIDTH = 32
SHA_PREFIX = 12
FORMATS = ("text", "json", "md")


def when(made_at: float) -> str:
    if made_at <= 0:
        return "at an unknown time"
    return datetime.fromtimestamp(made_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return clean(text)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _tally(report: Report) -> tuple[int, int]:
    proven = sum(1 for c in report.claims if c.proven)
    return proven, len(report.claims) - proven


def check_state(check: dict[str, Any]) -> str:
    ok = check.get("ok")
    return "pass" if ok is True else "fail" if ok is False else "skipped"


def _reproduce(report: Report) -> str | None:
    line = report.extra.get("reproduce")
    if isinstance(line, str):
        return line
    claim = next((c for c in report.claims if c.key == "reproduce" and c.proven), None)
    return claim.value if claim is not None and isinstance(claim.value, str) else None


def _checks_note(report: Report) -> str | None:
    note = report.extra.get("checks_note")
    return note if isinstance(note, str) else None


# ------------------------------------------------------------------ text


def _evidence_text(claim: Claim) -> str:
    if not claim.proven:
        return f"unverified: {clean(claim.reason or 'no evidence')}"
    first = claim.evidence[0]
    sha = (first.sha256 or "no sha256")[:SHA_PREFIX]
    more = f" (+{len(claim.evidence) - 1} more)" if len(claim.evidence) > 1 else ""
    return f"{clean(first.path)} {sha}{more}"


def to_text(report: Report) -> str:
    proven, unproven = _tally(report)
    lines = [f"report {clean(report.subject)} ({clean(report.kind or 'unknown kind')}), made {when(report.made_at)}",
             f"claims: {proven} with evidence, {unproven} unverified"]  # fmt: skip
    keys = [_cut(clean(c.key), KEY_WIDTH) for c in report.claims]
    values = [_cut(value_text(c.value), VALUE_WIDTH) for c in report.claims]
    kw = max((len(k) for k in keys), default=0)
    vw = max((len(v) for v in values), default=0)
    for key, value, claim in zip(keys, values, report.claims):
        lines.append(f"  {key.ljust(kw)}  {value.ljust(vw)}  {_evidence_text(claim)}")
    note = _checks_note(report)
    if report.checks:
        lines.append("checks:")
        names = [_cut(clean(c.get("name", "?")), KEY_WIDTH) for c in report.checks]
        nw = max(len(n) for n in names)
        for name, check in zip(names, report.checks):
            figure = _cut(value_text(check.get("figure")), VALUE_WIDTH)
            lines.append(f"  {check_state(check):7}  {name.ljust(nw)}  {figure}  {clean(check.get('reason', ''))}")
    else:
        lines.append(f"checks: {clean(note)}" if note else "checks: none apply")
    line = _reproduce(report)
    lines.append(f"reproduce: {clean(line)}" if line else "reproduce: unverified (run.json does not say how)")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ json


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ markdown

_MD_SPECIAL = re.compile(r"([\\|`*_<>\[\]#])")


def md(text: Any) -> str:
    """A table cell's text: control characters marked, Markdown's specials escaped."""
    return _MD_SPECIAL.sub(r"\\\1", clean(text if isinstance(text, str) else str(text)))


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _claim_row(claim: Claim) -> str:
    if not claim.proven:
        return f"| {md(claim.key)} | **unverified** | — | — | {md(claim.reason or 'no evidence')} |"
    files = "<br>".join(md(e.path) for e in claim.evidence)
    shas = "<br>".join(md((e.sha256 or "no sha256")[:SHA_PREFIX]) for e in claim.evidence)
    how = "; ".join(md(e.how) for e in claim.evidence if e.how)
    return f"| {md(claim.key)} | {md(value_text(claim.value))} | {files} | {shas} | {how} |"


def to_markdown(report: Report) -> str:
    proven, unproven = _tally(report)
    out = [f"## Training report: {md(report.subject)} ({md(report.kind or 'unknown kind')})", "",
           f"Made {when(report.made_at)} by `trainledger report`, from files only: {proven} claims with "
           f"evidence, {unproven} unverified.", "",
           "| claim | value | evidence file | sha256 | how |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
    out += [_claim_row(c) for c in report.claims]
    out += ["", "### Checks", ""]
    if report.checks:
        out += ["| check | result | figure | reason |", "| --- | --- | --- | --- |"]
        for check in report.checks:
            state = check_state(check)
            shown = f"**{state}**" if state == "fail" else state
            out.append(f"| {md(check.get('name', '?'))} | {shown} | {md(value_text(check.get('figure')))} | "
                       f"{md(check.get('reason', ''))} |")  # fmt: skip
    else:
        out.append(md(_checks_note(report) or "none apply"))
    out += ["", "### Reproduce", ""]
    line = _reproduce(report)
    if line:
        text = clean(line)
        fence = _fence(text)
        out += [f"{fence}sh", text, fence]
    else:
        out.append("unverified: run.json does not say how the run was made")
    return "\n".join(out) + "\n"


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "md":
        return to_markdown(report)
    if fmt == "text":
        return to_text(report)
    raise ValueError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
