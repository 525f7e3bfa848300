"""Every SQL statement of the registry, and nothing else: the one module another database replaces.

The state is one SQLite file, registry/registry.db, opened in WAL mode with
`synchronous=FULL`, so a committed operation survives a power cut and readers never block
the writer. Each operation is one `BEGIN IMMEDIATE` transaction: writers queue on the
database lock (busy timeout), never interleave. The store (store.py) says what to change;
this module says how rows look and maps them to the dataclasses of types.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from trainledger.engines.registry.types import Artifact, AuditEntry, Check, ModelState, Version

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    kind TEXT,
    active TEXT,
    previous TEXT,
    canary TEXT,
    traffic INTEGER NOT NULL DEFAULT 0,
    condition TEXT,
    condition_reason TEXT,
    policy TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL REFERENCES models(name),
    version TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    deployed_at REAL,
    kind TEXT,
    checksum TEXT NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT,
    checkpoint TEXT,
    epoch INTEGER,
    step INTEGER,
    is_best INTEGER,
    is_last INTEGER,
    base_model TEXT,
    training_samples INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}',
    dataset_path TEXT,
    dataset_sha256 TEXT,
    reproduce TEXT,
    checks TEXT NOT NULL DEFAULT '[]',
    verified_at REAL,
    corrupt_detail TEXT,
    pruned_at REAL,
    PRIMARY KEY (model, version),
    UNIQUE (model, seq)
);
CREATE TABLE IF NOT EXISTS artifacts (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (model, version, name),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);
CREATE INDEX IF NOT EXISTS artifacts_by_sha ON artifacts(sha256);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    model TEXT NOT NULL,
    action TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT,
    reason TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    active TEXT,
    canary TEXT,
    traffic INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS audit_by_model ON audit(model, time);
"""

_VERSION_COLUMNS = (
    "model", "version", "seq", "status", "created_at", "deployed_at", "kind", "checksum", "source",
    "run_id", "checkpoint", "epoch", "step", "is_best", "is_last", "base_model", "training_samples",
    "metrics", "dataset_path", "dataset_sha256", "reproduce", "checks", "verified_at", "corrupt_detail",
    "pruned_at",
)  # fmt: skip
_MODEL_COLUMNS = (
    "name", "kind", "active", "previous", "canary", "traffic", "condition", "condition_reason", "policy",
    "updated_at",
)  # fmt: skip
_AUDIT_COLUMNS = (
    "id", "time", "user", "host", "model", "action", "from_version", "to_version", "reason", "details",
    "active", "canary", "traffic",
)  # fmt: skip


def _json(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()


def _unjson(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return default


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions whose value is not None, and its arguments."""
    kept = [(sql, value) for sql, value in conditions if value is not None]
    clause = f"WHERE {' AND '.join(sql for sql, _ in kept)}" if kept else ""
    return clause, [value for _, value in kept]


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


class Database:
    """A connection to registry.db. One per thread; cheap to open (no schema work on reads)."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        if not create and not path.exists():
            raise FileNotFoundError(path)
        self.conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        if create:
            with self.write():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError as exc:  # a first write killed before its schema committed
            if create or "no such table" not in str(exc):
                raise
            self.conn.close()
            raise FileNotFoundError(f"{path}: no registry tables yet") from None
        if row is None or int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(f"{path}: registry schema {row and row[0]} is newer than this trainledger knows")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction: BEGIN IMMEDIATE (waits for other writers), COMMIT or ROLLBACK."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[None]:
        """One consistent view across several SELECTs."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ models
    def model(self, name: str) -> ModelState | None:
        rows = self._models("WHERE m.name = ?", (name,))
        return rows[0] if rows else None

    def models(self) -> list[ModelState]:
        return self._models("", ())

    def _models(self, where: str, args: Sequence[Any]) -> list[ModelState]:
        cols = ", ".join(f"m.{c}" for c in _MODEL_COLUMNS)
        sql = (
            f"SELECT {cols}, (SELECT COUNT(*) FROM versions v WHERE v.model = m.name) "
            f"FROM models m {where} ORDER BY m.name"
        )
        out = []
        for r in self.conn.execute(sql, args):
            d = dict(zip(_MODEL_COLUMNS, r))
            out.append(ModelState(
                name=d["name"], kind=d["kind"], active=d["active"], previous=d["previous"], canary=d["canary"],
                traffic=int(d["traffic"]), condition=d["condition"], condition_reason=d["condition_reason"],
                versions=int(r[-1]), updated_at=float(d["updated_at"]), policy=_unjson(d["policy"], {}),
            ))  # fmt: skip
        return out

    def insert_model(self, name: str, kind: str | None, now: float) -> None:
        self.conn.execute(
            "INSERT INTO models (name, kind, created_at, updated_at) VALUES (?, ?, ?, ?)", (name, kind, now, now)
        )

    def update_model(self, name: str, now: float, **fields: Any) -> None:
        allowed = set(_MODEL_COLUMNS) - {"name", "updated_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise KeyError(f"not model columns: {sorted(unknown)}")
        if "policy" in fields:
            fields["policy"] = _json(fields["policy"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(
            f"UPDATE models SET {sets}, updated_at = ? WHERE name = ?", (*fields.values(), now, name)
        )

    # ------------------------------------------------------------------ versions
    def next_seq(self, model: str) -> int:
        row = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM versions WHERE model = ?", (model,)).fetchone()
        return int(row[0]) + 1

    def version_exists(self, model: str, version: str) -> bool:
        sql = "SELECT 1 FROM versions WHERE model = ? AND version = ?"
        return self.conn.execute(sql, (model, version)).fetchone() is not None

    def insert_version(self, v: Version) -> None:
        values = (
            v.model, v.version, v.seq, v.status, v.created_at, v.deployed_at, v.kind, v.checksum, v.source,
            v.run_id, v.checkpoint, v.epoch, v.step, v.is_best, v.is_last, v.base_model, v.training_samples,
            _json(v.metrics), v.dataset_path, v.dataset_sha256, v.reproduce, _json([c.to_dict() for c in v.checks]),
            v.verified_at, v.corrupt_detail, v.pruned_at,
        )  # fmt: skip
        marks = ", ".join("?" for _ in _VERSION_COLUMNS)
        self.conn.execute(f"INSERT INTO versions ({', '.join(_VERSION_COLUMNS)}) VALUES ({marks})", values)
        self.conn.executemany(
            "INSERT INTO artifacts (model, version, name, sha256, bytes) VALUES (?, ?, ?, ?, ?)",
            [(v.model, v.version, a.name, a.sha256, a.bytes) for a in v.artifacts],
        )

    def update_version(self, model: str, version: str, **fields: Any) -> None:
        allowed = {"status", "deployed_at", "verified_at", "corrupt_detail", "pruned_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise KeyError(f"not updatable version columns: {sorted(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(
            f"UPDATE versions SET {sets} WHERE model = ? AND version = ?", (*fields.values(), model, version)
        )

    def versions(self, model: str | None = None, version: str | None = None) -> list[Version]:
        """Versions oldest first; of one model, or one version, or all."""
        clause, args = _where(("model = ?", model), ("version = ?", version))
        artifacts: dict[tuple[str, str], list[Artifact]] = {}
        sql = f"SELECT model, version, name, sha256, bytes FROM artifacts {clause} ORDER BY model, version, name"
        for m, ver, name, sha, size in self.conn.execute(sql, args):
            artifacts.setdefault((m, ver), []).append(Artifact(name, sha, int(size)))
        out = []
        sql = f"SELECT {', '.join(_VERSION_COLUMNS)} FROM versions {clause} ORDER BY model, seq"
        for r in self.conn.execute(sql, args):
            d = dict(zip(_VERSION_COLUMNS, r))
            d["metrics"] = _unjson(d["metrics"], {})
            d["checks"] = tuple(Check.from_dict(c) for c in _unjson(d["checks"], []) if isinstance(c, dict))
            d["is_best"], d["is_last"] = _flag(d["is_best"]), _flag(d["is_last"])
            d["artifacts"] = tuple(artifacts.get((d["model"], d["version"]), ()))
            out.append(Version(**d))
        return out

    def sha_in_use(self, sha256: str) -> bool:
        """Whether any version whose artifacts are kept still names these bytes."""
        sql = (
            "SELECT 1 FROM artifacts a JOIN versions v ON a.model = v.model AND a.version = v.version "
            "WHERE a.sha256 = ? AND v.pruned_at IS NULL LIMIT 1"
        )
        return self.conn.execute(sql, (sha256,)).fetchone() is not None

    def all_shas(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT sha256 FROM artifacts")}

    # ------------------------------------------------------------------ audit
    def insert_audit(self, e: AuditEntry) -> int:
        values = (
            e.time, e.user, e.host, e.model, e.action, e.from_version, e.to_version, e.reason, _json(e.details),
            e.active, e.canary, e.traffic,
        )  # fmt: skip
        cols = ", ".join(_AUDIT_COLUMNS[1:])
        cur = self.conn.execute(f"INSERT INTO audit ({cols}) VALUES ({', '.join('?' for _ in values)})", values)
        return int(cur.lastrowid or 0)

    def audit(self, model: str | None = None, until: float | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[AuditEntry]:  # fmt: skip
        clause, args = _where(("model = ?", model), ("time <= ?", until))
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM audit {clause} ORDER BY id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = []
        for r in self.conn.execute(sql, args):
            d = dict(zip(_AUDIT_COLUMNS, r))
            d["details"] = _unjson(d["details"], {})
            d["traffic"] = int(d["traffic"])
            out.append(AuditEntry(**d))
        return out

    def actives_newest_first(self, model: str) -> list[str]:
        """The versions that were active after each audited action of `model`, newest first."""
        sql = "SELECT active FROM audit WHERE model = ? AND active IS NOT NULL ORDER BY id DESC"
        return [r[0] for r in self.conn.execute(sql, (model,))]
