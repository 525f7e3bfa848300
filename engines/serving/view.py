"""The row the Ports pane shows for one port, and the pure arithmetic that fills it.

The pane never probes: prober.py fetches each port's /health and /metrics off the UI thread
and the functions here turn those answers into a PortView — the server's histogram between
two scrapes as p50/p95 (interpolated inside buckets as Prometheus' `histogram_quantile`
does), counters as an error rate and requests/s, /health as versions, provenance hints and
analysis windows. Every string a server sent is data: it is cleaned (engines/safetext.py)
and cut to a bounded length before it lands in a row. Nothing here does I/O, so tests and
the pane's snapshot fixtures build rows by hand.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from trainledger.engines.safetext import clean

STATES: tuple[str, ...] = ("up", "down", "hung", "slow", "garbage", "stopped")
TEXT_LIMIT = 256  # a field a server sends is cut here: a row is one line
PATH_LIMIT = 4096
HISTORY = 60  # latency_history keeps this many probes
WINDOW_KEYS = ("start", "end", "requests", "errors", "mean_latency_ms", "memory_bytes", "outcome", "reason")
MAX_WINDOWS = 20

REQUESTS = "trainledger_requests_total"
ERRORS = "trainledger_request_errors_total"
BUCKETS = "trainledger_request_duration_seconds_bucket"
RSS = "process_resident_memory_bytes"
_WANTED = tuple(f"{name}{end}" for name in (REQUESTS, ERRORS, BUCKETS, RSS) for end in ("{", " "))


@dataclass(frozen=True)
class PortView:
    """One port as the pane shows it; None where nothing is known (not measured yet, down)."""

    port: int
    host: str
    url: str
    model: str | None  # None: the passthrough port
    kind: str | None
    configured: bool  # listed in ports.toml
    pid: int | None
    state: str  # one of STATES
    detail: str  # one line: why (timeout after 0.5 s, HTTP 500, not JSON, ...)
    active: str | None = None
    active_sha256: str | None = None
    canary: str | None = None
    traffic: int = 0
    note: str | None = None  # "registry says v3; refused: sha256 mismatch"
    run_id: str | None = None
    dataset_path: str | None = None
    dataset_sha256: str | None = None
    val_metric: tuple[str, float] | None = None  # ("val/cosine", 0.56) at the deployed checkpoint
    parameters: int | None = None
    p50_ms: float | None = None  # from the server's histogram, between the last two scrapes
    p95_ms: float | None = None
    probe_p50_ms: float | None = None  # from the prober's own /health round trips
    probe_p95_ms: float | None = None
    error_rate: float | None = None  # 0..1 over the last window; None with no requests in it
    rps: float | None = None
    rss_bytes: int | None = None
    uptime_s: float | None = None
    latency_history: tuple[float, ...] = ()  # ms per probe, newest last, at most HISTORY
    artifact_path: str | None = None  # realpath of the file the active version loads
    windows: tuple[dict[str, Any], ...] = ()  # /health analysis windows, newest last
    analysis_subject: str | None = None  # "canary" | "bake" | None
    probed_at: float | None = None  # wall time of the probe this row comes from

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (`ports status --json`): tuples become lists."""
        out = asdict(self)
        out["val_metric"] = list(self.val_metric) if self.val_metric else None
        out["latency_history"] = list(self.latency_history)
        out["windows"] = [dict(w) for w in self.windows]
        return out


# ---------------------------------------------------------------------- text from servers
def text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    """A server's string as one clean, bounded line; None stays None, other types are refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    out = clean(value)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------- percentiles
def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile (0..1) of cumulative `(le, count)` buckets, as Prometheus computes it.

    Linear interpolation inside the bucket the rank falls in (the first bucket starts at 0);
    a rank in the +Inf bucket gives the highest finite bound. None with no observations."""
    bs = sorted(buckets)
    if len(bs) < 2 or not math.isinf(bs[-1][0]) or not 0.0 <= q <= 1.0:
        return None
    total = bs[-1][1]
    if total <= 0:
        return None
    rank = q * total
    i = next((k for k in range(len(bs) - 1) if bs[k][1] >= rank), len(bs) - 1)
    if i == len(bs) - 1:
        return bs[-2][0]
    start, below = (0.0, 0.0) if i == 0 else (bs[i - 1][0], bs[i - 1][1])
    end, count = bs[i][0], bs[i][1] - below
    if i == 0 and end <= 0:
        return end
    if count <= 0:
        return end
    return start + (end - start) * (rank - below) / count


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation (numpy's default); None when empty."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# ---------------------------------------------------------------------- /metrics
@dataclass(frozen=True)
class Scrape:
    """The figures of one /metrics answer, summed over versions (`at`: monotonic seconds)."""

    at: float
    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (le, cumulative count), le ascending, +Inf last
    rss_bytes: int | None


@dataclass(frozen=True)
class Window:
    """What happened between two scrapes."""

    p50_ms: float | None
    p95_ms: float | None
    error_rate: float | None
    rps: float


def parse_metrics(body: str, at: float) -> Scrape:
    """Prometheus text as a Scrape; ValueError when it is not Prometheus text. Families the
    server has not created yet (no request so far) count as zero.

    Only the sample lines of the four series used reach the parser (it is pure Python and
    most of a scrape's cost); a body with none of them is parsed whole, so garbage still fails."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = [line for line in body.splitlines() if line.startswith(_WANTED)]
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    rss: int | None = None
    for family in text_string_to_metric_families("\n".join(wanted) + "\n" if wanted else body):
        for s in family.samples:
            if s.name == REQUESTS:
                requests += s.value
            elif s.name == ERRORS:
                errors += s.value
            elif s.name == BUCKETS:
                le = float(s.labels.get("le", "nan"))
                if not math.isnan(le):
                    buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == RSS and math.isfinite(s.value):
                rss = int(s.value)
    return Scrape(at, requests, errors, tuple(sorted(buckets.items())), rss)


def window(prev: Scrape, cur: Scrape) -> Window | None:
    """The figures between two scrapes of the same server; None if a counter went back (a
    restart) or no time passed."""
    dt = cur.at - prev.at
    dreq, derr = cur.requests - prev.requests, cur.errors - prev.errors
    if dt <= 0 or dreq < 0 or derr < 0:
        return None
    before = dict(prev.buckets)
    deltas = [(le, n - before.get(le, 0.0)) for le, n in cur.buckets]
    if any(d < 0 for _, d in deltas):
        return None

    def q(x: float) -> float | None:
        v = histogram_quantile(x, deltas)
        return None if v is None else v * 1000.0

    return Window(q(0.5), q(0.95), derr / dreq if dreq > 0 else None, dreq / dt)


# ---------------------------------------------------------------------- /health
@dataclass(frozen=True)
class Health:
    """The fields of a /health answer a row shows, cleaned."""

    model: str | None
    kind: str | None
    pid: int | None
    uptime_s: float | None
    active: str | None
    active_sha256: str | None
    active_run_id: str | None
    parameters: int | None
    artifact_path: str | None
    canary: str | None
    traffic: int
    note: str | None
    windows: tuple[dict[str, Any], ...]
    analysis_subject: str | None
    rss_bytes: int | None


def _loaded(value: Any, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("version"), str):
        raise ValueError(f"{what} is not an object with a version")
    return value


def _artifact_path(active: dict[str, Any] | None) -> str | None:
    arts = active.get("artifacts") if active else None
    if not isinstance(arts, list):
        return None
    paths = [a.get("path") for a in arts if isinstance(a, dict) and isinstance(a.get("path"), str)]
    weights = [p for p in paths if p.endswith((".safetensors", ".bin", ".pt"))]
    chosen = (weights or paths or [None])[0]
    if not chosen or "\0" in chosen or len(chosen) > PATH_LIMIT:
        return None
    return text(os.path.realpath(chosen), PATH_LIMIT)


def _note(active: str | None, canary: str | None, health: dict[str, Any]) -> str | None:
    """Where the server and the registry disagree, and why (a refused load names its reason)."""
    refused: dict[str, str] = {}
    for r in health.get("refused") or []:
        if isinstance(r, dict) and isinstance(r.get("version"), str):
            refused[r["version"]] = str(r.get("reason") or "refused")
    parts = []
    reg = health.get("registry")
    if isinstance(reg, dict):
        for label, served, key in (("registry says", active, "active"), ("registry canary", canary, "canary")):
            wanted = reg.get(key)
            if wanted is not None and not isinstance(wanted, str):
                continue
            if wanted != served:
                why = refused.get(wanted) if wanted else None
                parts.append(f"{label} {wanted or 'none'}" + (f"; refused: {why}" if why else ""))
    if isinstance(health.get("registry_error"), str) and health["registry_error"]:
        parts.append(f"registry: {health['registry_error']}")
    return text("; ".join(parts)) if parts else None


def _windows(analysis: Any) -> tuple[tuple[dict[str, Any], ...], str | None]:
    if not isinstance(analysis, dict):
        return (), None
    subject = analysis.get("subject") if analysis.get("subject") in ("canary", "bake") else None
    out = []
    for w in (analysis.get("windows") or [])[-MAX_WINDOWS:] if isinstance(analysis.get("windows"), list) else []:
        if not isinstance(w, dict):
            continue
        row: dict[str, Any] = {}
        for key in WINDOW_KEYS:
            v = w.get(key)
            row[key] = text(v) if isinstance(v, str) else _num(v)
        out.append(row)
    return tuple(out), subject


def read_health(obj: Any) -> Health:
    """A decoded /health answer as Health; ValueError naming what is not the contract's shape."""
    if not isinstance(obj, dict):
        raise ValueError("health is not a JSON object")
    if obj.get("ok") is not True:
        raise ValueError("health does not say ok")
    active = _loaded(obj.get("active"), "active")
    canary = _loaded(obj.get("canary"), "canary")
    for key in ("model", "kind"):
        if obj.get(key) is not None and not isinstance(obj.get(key), str):
            raise ValueError(f"health {key} is not a string")
    a_version = text(active["version"]) if active else None
    c_version = text(canary["version"]) if canary else None
    sha = active.get("sha256") if active else None
    run = active.get("run_id") if active else None
    windows, subject = _windows(obj.get("analysis"))
    traffic = _int(canary.get("traffic")) if canary else None
    note = _note(active["version"] if active else None, canary["version"] if canary else None, obj)
    return Health(
        model=text(obj.get("model")), kind=text(obj.get("kind")), pid=_int(obj.get("pid")),
        uptime_s=_num(obj.get("uptime_s")), active=a_version,
        active_sha256=text(sha) if isinstance(sha, str) else None,
        active_run_id=text(run) if isinstance(run, str) else None,
        parameters=_int(active.get("parameters")) if active else None, artifact_path=_artifact_path(active),
        canary=c_version, traffic=traffic if traffic is not None and 0 <= traffic <= 100 else 0,
        note=note, windows=windows, analysis_subject=subject,
        rss_bytes=_int(obj.get("rss_bytes")),
    )  # fmt: skip
