"""store.Registry operation by operation: what each does, what each refuses, what each leaves.

Real safetensors files (numpy, no torch), a real SQLite registry in a fresh workspace and
a fixed clock; nothing of the engine is mocked. The crash, tamper and race tests live in
test_faults.py, test_tamper.py and test_concurrency.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engines.registry.registry_driver import candidate, consistency_problems, sha256_of, write_artifact
from trainledger.engines.registry import blobs
from trainledger.engines.registry.store import DB_FILE, Registry
from trainledger.engines.registry.types import Check, RegistryError, RegistryUsageError
from trainledger.engines.workspace import Workspace, init_workspace


class Clock:
    """Each call is one second after the last: every operation has its own moment."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("TRAINLEDGER_USER", "tester")
    return init_workspace(tmp_path / "ws")


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    """Six different artifacts, f[0]..f[5]."""
    return [write_artifact(tmp_path / "src" / f"f{i}" / "model.safetensors", seed=i) for i in range(6)]


@pytest.fixture
def reg(ws: Workspace) -> Registry:
    with Registry(ws, clock=Clock()) as r:
        yield r


def deploy_n(reg: Registry, files: list[Path], n: int, model: str = "m") -> None:
    for i in range(n):
        reg.deploy(model, candidate(files[i], run_id=f"r{i + 1}"))


def blob_files(ws: Workspace) -> list[Path]:
    root = ws.registry_dir / blobs.ARTIFACTS
    return sorted(p for p in root.glob("*/*") if p.parent.name != "tmp")


def refused(reg: Registry, call, exc: type[Exception] = RegistryError, match: str | None = None) -> None:
    """`call` raises `exc` and leaves no audit entry and no change of any model or version."""
    before = reg.snapshot()
    with pytest.raises(exc, match=match):
        call()
    assert reg.snapshot() == before


# --------------------------------------------------------------------------- deploy

def test_deploy_names_v1_v2_and_records_the_candidate(reg: Registry, files: list[Path]) -> None:
    c1 = reg.deploy("m", candidate(files[0], run_id="r1"), reason="first")
    c2 = reg.deploy("m", candidate(files[1], run_id="r2"))
    assert (c1.action, c1.from_version, c1.to_version, c1.dry_run) == ("deploy", None, "v1", False)
    assert c2.to_version == "v2" and "as m v2" in c2.message and "inactive" in c2.message
    v1, v2 = reg.versions("m")
    assert (v1.version, v1.seq, v1.status, v1.run_id, v1.kind) == ("v1", 1, "inactive", "r1", "lvm-gru")
    assert v1.checksum == sha256_of(files[0]) == v1.artifacts[0].sha256
    assert v1.artifacts[0].bytes == files[0].stat().st_size and v1.deployed_at is None
    assert v2.seq == 2 and v2.created_at > v1.created_at
    state = reg.model("m")
    assert (state.kind, state.active, state.canary, state.traffic, state.versions) == ("lvm-gru", None, None, 0, 2)
    first = reg.audit("m")[0]
    assert (first.action, first.to_version, first.reason, first.user, first.id) == ("deploy", "v1", "first",
                                                                                    "tester", c1.audit_id)
    assert reg.blob_path(v1.checksum).read_bytes() == files[0].read_bytes()
    assert not os.access(reg.blob_path(v1.checksum), os.W_OK) or os.geteuid() == 0  # read-only (root writes anyway)


def test_deploy_with_version_names_and_auto_names_after_them(reg: Registry, files: list[Path]) -> None:
    deploy_n(reg, files, 2)
    assert reg.deploy("m", candidate(files[2]), version="v1.0.3").to_version == "v1.0.3"
    assert reg.deploy("m", candidate(files[3])).to_version == "v4"  # the 4th version
    assert reg.deploy("m", candidate(files[4]), version="v5").to_version == "v5"
    assert reg.deploy("m", candidate(files[5])).to_version == "v6"
    reg.deploy("m", candidate(files[0]), version="v7")
    assert [v.version for v in reg.versions("m")] == ["v1", "v2", "v1.0.3", "v4", "v5", "v6", "v7"]
    assert reg.deploy("m", candidate(files[1])).to_version == "v8"
    reg.deploy("m", candidate(files[2]), version="v10")  # the 9th version, named ahead
    assert reg.deploy("m", candidate(files[3])).to_version == "v11"  # v10 is taken: the next free name
    assert [v.seq for v in reg.versions("m")][-3:] == [8, 9, 11]


def test_a_taken_version_name_is_refused(reg: Registry, files: list[Path]) -> None:
    deploy_n(reg, files, 1)
    refused(reg, lambda: reg.deploy("m", candidate(files[1]), version="v1"), match="never overwritten")
    assert reg.version("m", "v1").checksum == sha256_of(files[0])


def test_another_kind_is_refused(reg: Registry, files: list[Path]) -> None:
    deploy_n(reg, files, 1)
    refused(reg, lambda: reg.deploy("m", candidate(files[1], kind="san")), match="lvm-gru")
    reg.deploy("other", candidate(files[1], kind="san"))  # another model may hold another kind
    assert reg.model("other").kind == "san"


def test_bad_names_are_usage_errors(reg: Registry, files: list[Path]) -> None:
    for bad in ("../x", "a/b", "x\0y", "", ".hidden"):
        with pytest.raises(RegistryUsageError):
            reg.deploy(bad, candidate(files[0]))
        with pytest.raises(RegistryUsageError):
            reg.deploy("m", candidate(files[0]), version=bad)
    assert not (reg.dir / DB_FILE).exists()


def test_dry_run_writes_nothing(reg: Registry, ws: Workspace, files: list[Path]) -> None:
    change = reg.deploy("m", candidate(files[0]), dry_run=True)
    assert change.dry_run and change.to_version == "v1" and change.message.startswith("dry run: would deploy")
    assert change.audit_id is None and change.details["ok"] is True
    assert not (ws.registry_dir / DB_FILE).exists() and not (ws.registry_dir / blobs.ARTIFACTS).exists()
    deploy_n(reg, files, 1)
    before = reg.snapshot()
    change = reg.deploy("m", candidate(files[1]), dry_run=True)
    assert change.to_version == "v2" and reg.snapshot() == before
    assert not reg.blob_path(sha256_of(files[1])).exists()
    bad = Check("size", False, "too small")
    change = reg.deploy("m", candidate(files[1]), checks=[bad], dry_run=True)
    assert "would refuse" in change.message and "too small" in change.message and change.details["ok"] is False
    assert reg.snapshot() == before


def test_a_failed_check_refuses_the_deploy_and_a_skipped_one_does_not(reg: Registry, files: list[Path]) -> None:
    deploy_n(reg, files, 1)
    refused(reg, lambda: reg.deploy("m", candidate(files[1]), checks=[Check("format", False, "not safetensors")]),
            match="not safetensors")  # fmt: skip
    assert not reg.blob_path(sha256_of(files[1])).exists()
    skipped = Check("load and probe", True, "not run", skipped=True)
    change = reg.deploy("m", candidate(files[1]), checks=[Check("format", True), skipped])
    assert [c.name for c in reg.version("m", change.to_version).checks] == ["format", "load and probe"]


def test_identical_files_are_one_blob(reg: Registry, ws: Workspace, files: list[Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy" / "model.safetensors"
    copy.parent.mkdir()
    copy.write_bytes(files[0].read_bytes())
    reg.deploy("m", candidate(files[0]))
    reg.deploy("m", candidate(copy))
    reg.deploy("n", candidate(files[0]))
    assert {v.checksum for v in reg.versions()} == {sha256_of(files[0])}
    assert blob_files(ws) == [reg.blob_path(sha256_of(files[0]))]
    assert reg.orphans() == []


# --------------------------------------------------------------------------- canary

@pytest.fixture
def live(reg: Registry, files: list[Path]) -> Registry:
    """m with v1..v4 deployed and v1 active."""
    deploy_n(reg, files, 4)
    reg.promote("m", "v1")
    return reg


@pytest.mark.parametrize("traffic", [1, 10, 50, 99])
def test_canary_takes_1_to_99_percent(live: Registry, traffic: int) -> None:
    change = live.canary("m", "v2", traffic, reason="try it")
    assert (change.from_version, change.to_version) == ("v1", "v2")
    assert f"0 % -> {traffic} %" in change.message and f"v1 keeps {100 - traffic} %" in change.message
    state = live.model("m")
    assert (state.active, state.canary, state.traffic) == ("v1", "v2", traffic)
    v2 = live.version("m", "v2")
    assert v2.status == "canary" and v2.deployed_at is not None
    entry = live.audit("m")[-1]
    assert (entry.action, entry.canary, entry.traffic, entry.reason) == ("canary", "v2", traffic, "try it")


@pytest.mark.parametrize("traffic", [0, 100, -1, 150, 10.5, True, "10", None])
def test_bad_traffic_is_a_usage_error(live: Registry, traffic: object) -> None:
    refused(live, lambda: live.canary("m", "v2", traffic), RegistryUsageError, match="1 to 99")


def test_a_second_canary_is_refused(live: Registry) -> None:
    live.canary("m", "v2", 10)
    refused(live, lambda: live.canary("m", "v3", 20), match="v2 is on canary at 10 %")


def test_the_same_canary_may_move_its_traffic(live: Registry) -> None:
    live.canary("m", "v2", 10)
    up = live.canary("m", "v2", 50)
    assert "10 % -> 50 %" in up.message and up.details["traffic_from"] == 10 and up.details["traffic_to"] == 50
    down = live.canary("m", "v2", 5)
    assert "50 % -> 5 %" in down.message
    assert live.model("m").traffic == 5


def test_canary_needs_an_active_version_and_not_the_active_one(reg: Registry, files: list[Path]) -> None:
    deploy_n(reg, files, 2)
    refused(reg, lambda: reg.canary("m", "v2", 10), match="no active version")
    reg.promote("m", "v1")
    refused(reg, lambda: reg.canary("m", "v1", 10), match="active version already")
    refused(reg, lambda: reg.canary("m", "v9", 10), match="no version 'v9'")
    refused(reg, lambda: reg.canary("nope", "v1", 10), match="no model 'nope'")


# --------------------------------------------------------------------------- promote

def test_promote_the_canary(live: Registry) -> None:
    live.canary("m", "v2", 10)
    change = live.promote("m", reason="good")
    assert (change.from_version, change.to_version) == ("v1", "v2")
    assert "v1 -> v2 active" in change.message and "90 % of requests move" in change.message
    assert "rollback target v1" in change.message
    state = live.model("m")
    assert (state.active, state.previous, state.canary, state.traffic) == ("v2", "v1", None, 0)
    assert {v.version: v.status for v in live.versions("m")} == {
        "v1": "inactive", "v2": "active", "v3": "inactive", "v4": "inactive"}


def test_promote_a_named_version_clears_another_canary(live: Registry) -> None:
    live.canary("m", "v2", 10)
    change = live.promote("m", "v3")
    assert "v1 -> v3 active" in change.message and "canary v2 cleared" in change.message
    assert change.details["cleared_canary"] == "v2"
    state = live.model("m")
    assert (state.active, state.previous, state.canary, state.traffic) == ("v3", "v1", None, 0)
    assert live.version("m", "v2").status == "inactive"


def test_promote_refusals(live: Registry) -> None:
    refused(live, lambda: live.promote("m"), match="no canary to promote")
    refused(live, lambda: live.promote("m", "v1"), match="active version already")
    refused(live, lambda: live.promote("m", "v8"), match="no version 'v8'")


def test_the_first_promote_goes_from_nothing(reg: Registry, files: list[Path]) -> None:
    deploy_n(reg, files, 1)
    change = reg.promote("m", "v1")
    assert change.from_version is None and "nothing -> v1 active" in change.message
    v1 = reg.version("m", "v1")
    assert v1.status == "active" and v1.deployed_at is not None
    assert reg.model("m").previous is None


# --------------------------------------------------------------------------- abort

def test_abort_without_a_canary_is_refused_and_the_active_stays(live: Registry) -> None:
    """argo-rollouts#1292: an abort with no canary took down the stable version. Here: refused."""
    refused(live, lambda: live.abort("m"), match="no canary to abort; v1 stays active")
    state = live.model("m")
    assert (state.active, state.condition) == ("v1", None)
    assert live.version("m", "v1").status == "active"


def test_abort_puts_the_canary_to_zero_and_says_aborted(live: Registry) -> None:
    live.canary("m", "v2", 30)
    change = live.abort("m", reason="latency")
    assert (change.from_version, change.to_version) == ("v2", "v1")
    assert "v2 aborted (30 % -> 0 %), serving v1" in change.message
    state = live.model("m")
    assert (state.active, state.canary, state.traffic) == ("v1", None, 0)
    assert (state.condition, state.condition_reason) == ("aborted", "latency")
    assert live.version("m", "v2").status == "aborted"
    refused(live, lambda: live.abort("m"), match="no canary")  # a second abort: nothing to abort
    live.canary("m", "v3", 10)  # an operator acts: the condition is cleared
    assert live.model("m").condition is None


def test_an_automatic_abort_keeps_its_figures(live: Registry) -> None:
    live.canary("m", "v2", 10)
    figures = {"reason": "error rate 0.2 > 0.15", "error_rate": 0.2, "threshold": 0.15}
    live.abort("m", figures=figures)
    entry = live.audit("m")[-1]
    assert entry.details["automatic"] is True and entry.details["figures"] == figures
    assert live.model("m").condition_reason == "automatic: error rate 0.2 > 0.15"


# --------------------------------------------------------------------------- rollback

def test_rollback_to_the_previous_version(live: Registry) -> None:
    live.promote("m", "v2")
    change = live.rollback("m", reason="bad")
    assert (change.from_version, change.to_version) == ("v2", "v1")
    assert "rolled back v2 -> v1 (all traffic)" in change.message
    state = live.model("m")
    assert (state.active, state.canary, state.traffic) == ("v1", None, 0)
    assert live.version("m", "v2").status == "rolled_back" and live.version("m", "v1").status == "active"


def test_rollback_to_a_named_version_clears_the_canary(live: Registry) -> None:
    live.promote("m", "v2")
    live.promote("m", "v3")
    live.canary("m", "v4", 20)
    change = live.rollback("m", "v1")
    assert "v3 -> v1" in change.message and "canary v4 cleared" in change.message
    state = live.model("m")
    assert (state.active, state.canary, state.traffic) == ("v1", None, 0)
    statuses = {v.version: v.status for v in live.versions("m")}
    assert statuses == {"v1": "active", "v2": "inactive", "v3": "rolled_back", "v4": "inactive"}


def test_rollback_refusals(live: Registry, reg: Registry) -> None:
    refused(live, lambda: live.rollback("m"), match="no rollback target")
    refused(live, lambda: live.rollback("m", "v1"), match="active version already")
    refused(live, lambda: live.rollback("m", "v7"), match="no version 'v7'")


def test_the_rollback_target_after_repeated_promotes_and_rollbacks(reg: Registry, files: list[Path]) -> None:
    """The target is the version live before the active one, never one that was rolled back off:
    rolling back twice walks back through history, it never lands on what the first rollback left."""
    deploy_n(reg, files, 5)
    steps = [
        (lambda: reg.promote("m", "v1"), "v1", None),
        (lambda: reg.promote("m", "v2"), "v2", "v1"),
        (lambda: reg.rollback("m"), "v1", None),  # nothing was live before v1
        (lambda: reg.promote("m", "v3"), "v3", "v1"),
        (lambda: reg.promote("m", "v4"), "v4", "v3"),
        (lambda: reg.rollback("m"), "v3", "v1"),
        (lambda: reg.rollback("m"), "v1", None),  # not v4 (rolled back off) nor v2 (rolled back off)
        (lambda: reg.promote("m", "v4"), "v4", "v1"),  # promoted again on purpose: fit again
        (lambda: reg.promote("m", "v5"), "v5", "v4"),
        (lambda: reg.rollback("m"), "v4", "v1"),
        (lambda: reg.rollback("m", "v3"), "v3", "v1"),
    ]
    for i, (step, active, previous) in enumerate(steps):
        step()
        state = reg.model("m")
        assert (state.active, state.previous) == (active, previous), f"after step {i}"
        assert consistency_problems(reg.ws.root) == []


# --------------------------------------------------------------------------- history

def test_state_at_every_moment(live: Registry) -> None:
    live.canary("m", "v2", 10)
    live.canary("m", "v2", 40)
    live.promote("m")
    live.canary("m", "v3", 5)
    live.abort("m")
    live.rollback("m")
    entries = live.audit("m")
    assert [e.action for e in entries] == ["deploy"] * 4 + ["promote", "canary", "canary", "promote", "canary",
                                                            "abort", "rollback"]  # fmt: skip
    assert live.state_at("m", entries[0].time - 0.5) is None
    expected = [(None, None, 0)] * 4 + [("v1", None, 0), ("v1", "v2", 10), ("v1", "v2", 40), ("v2", None, 0),
                                        ("v2", "v3", 5), ("v2", None, 0), ("v1", None, 0)]  # fmt: skip
    for entry, live_then in zip(entries, expected, strict=True):
        for t in (entry.time, entry.time + 0.5):  # at the moment and until the next entry
            at = live.state_at("m", t)
            assert at is not None and at.id == entry.id and (at.active, at.canary, at.traffic) == live_then
    assert live.state_at("m", entries[-1].time + 1e6).id == entries[-1].id
    with pytest.raises(RegistryError, match="no model"):
        live.state_at("nope", entries[-1].time)


# --------------------------------------------------------------------------- prune

def test_prune_keeps_the_live_versions_and_the_records(reg: Registry, ws: Workspace, files: list[Path],
                                                       tmp_path: Path) -> None:  # fmt: skip
    shared = tmp_path / "shared" / "model.safetensors"
    shared.parent.mkdir()
    shared.write_bytes(files[4].read_bytes())
    deploy_n(reg, files, 5)  # v1..v5
    reg.deploy("m", candidate(shared))  # v6: the same bytes as v5
    reg.promote("m", "v1")
    reg.promote("m", "v2")  # active v2, rollback target v1
    reg.canary("m", "v3", 10)
    assert reg.version("m", "v6").checksum == reg.version("m", "v5").checksum
    change = reg.prune("m", keep=1)  # candidates newest first: v6 (kept), v5, v4
    assert change.details["pruned"] == ["v5", "v4"] and "v5, v4" in change.message
    assert reg.version("m", "v4").pruned_at is not None and reg.version("m", "v5").pruned_at is not None
    assert not reg.blob_path(sha256_of(files[3])).exists()  # v4's bytes: nobody else has them
    assert reg.blob_path(sha256_of(files[4])).exists()  # v5's bytes are v6's too
    assert len(reg.versions("m")) == 6  # the records stay
    for name in ("v1", "v2", "v3"):
        assert reg.version("m", name).pruned_at is None and reg.blob_path(reg.version("m", name).checksum).exists()
    reg.prune("m", keep=0)
    assert reg.version("m", "v6").pruned_at is not None and not reg.blob_path(sha256_of(files[4])).exists()
    assert [v.version for v in reg.versions("m") if v.pruned_at is None] == ["v1", "v2", "v3"]
    assert reg.orphans() == [] and consistency_problems(ws.root) == []
    again = reg.prune("m", keep=0)  # nothing left to prune: still an operation, said
    assert again.details["pruned"] == [] and "nothing" in again.message
    assert [v for v, problem in reg.verify("m") if problem] == []  # pruned versions are not re-hashed


def test_a_pruned_version_is_refused_without_being_called_corrupt(live: Registry) -> None:
    live.prune("m", keep=0)  # v2..v4 (v1 is active)
    for call in (lambda: live.promote("m", "v2"), lambda: live.canary("m", "v3", 10),
                 lambda: live.rollback("m", "v4")):  # fmt: skip
        refused(live, call, match="pruned")
    assert {v.status for v in live.versions("m") if v.version != "v1"} == {"inactive"}


@pytest.mark.parametrize("keep", [-1, True, 1.5, "2", None])
def test_bad_keep_is_a_usage_error(live: Registry, keep: object) -> None:
    refused(live, lambda: live.prune("m", keep), RegistryUsageError)


def test_prune_of_another_models_bytes_keeps_them(reg: Registry, files: list[Path]) -> None:
    reg.deploy("a", candidate(files[0]))
    reg.deploy("a", candidate(files[1]))
    reg.deploy("b", candidate(files[0]))
    reg.prune("a", keep=0)
    assert reg.blob_path(sha256_of(files[0])).exists() and not reg.blob_path(sha256_of(files[1])).exists()
    assert consistency_problems(reg.ws.root) == []


# --------------------------------------------------------------------------- the audit log

def test_one_audit_entry_per_successful_operation_and_none_per_refusal(live: Registry, files: list[Path]) -> None:
    steps = [
        (lambda: live.canary("m", "v2", 10), True),
        (lambda: live.canary("m", "v3", 10), False),
        (lambda: live.canary("m", "v2", 20), True),
        (lambda: live.abort("m"), True),
        (lambda: live.abort("m"), False),
        (lambda: live.promote("m"), False),
        (lambda: live.promote("m", "v3"), True),
        (lambda: live.promote("m", "v3"), False),
        (lambda: live.rollback("m"), True),
        (lambda: live.rollback("m"), False),
        (lambda: live.deploy("m", candidate(files[4]), version="v1"), False),
        (lambda: live.deploy("m", candidate(files[4])), True),
        (lambda: live.deploy("m", candidate(files[5]), dry_run=True), None),  # a dry run: no entry
        (lambda: live.set_policy("m", {"max_error_rate": 0.1}), True),
        (lambda: live.prune("m", keep=1), True),
        (lambda: live.rollback("nope"), False),
    ]
    for i, (step, ok) in enumerate(steps):
        before = live.audit()
        try:
            change = step()
        except RegistryError:
            assert ok is False, f"step {i} was refused"
            assert live.audit() == before, f"step {i}: a refusal left an audit entry"
            continue
        assert ok is not False, f"step {i} should have been refused"
        after = live.audit()
        if ok is None:
            assert after == before
            continue
        assert after[:-1] == before and len(after) == len(before) + 1, f"step {i}"
        entry = after[-1]
        assert (entry.id, entry.action, entry.from_version, entry.to_version) == (
            change.audit_id, change.action, change.from_version, change.to_version)
        assert entry.user == "tester" and entry.host
    assert consistency_problems(live.ws.root) == []


def test_verify_is_one_entry_per_model(reg: Registry, files: list[Path]) -> None:
    reg.deploy("a", candidate(files[0]))
    reg.deploy("b", candidate(files[1]))
    n = len(reg.audit())
    assert [problem for _, problem in reg.verify()] == [None, None]
    assert [e.action for e in reg.audit()[n:]] == ["verify", "verify"]
    reg.verify("a")
    assert [(e.action, e.model) for e in reg.audit()[n + 2:]] == [("verify", "a")]


def test_every_change_message_names_from_and_to(live: Registry, files: list[Path]) -> None:
    changes = [live.canary("m", "v2", 10), live.canary("m", "v2", 25), live.abort("m"), live.promote("m", "v2"),
               live.canary("m", "v3", 5), live.promote("m"), live.rollback("m"), live.rollback("m", "v1")]
    for c in changes:
        assert "->" in c.message, c.message
        for name in (c.from_version, c.to_version):
            assert name is None or name in c.message, c.message


def test_the_notice_file_follows_each_commit(live: Registry) -> None:
    import json

    change = live.canary("m", "v2", 10)
    notice = json.loads((live.dir / "changed").read_text())
    assert (notice["audit"], notice["model"], notice["action"]) == (change.audit_id, "m", "canary")


# --------------------------------------------------------------------------- reading creates nothing

@pytest.mark.parametrize("initialised", [True, False])
def test_reading_an_empty_workspace_creates_nothing(tmp_path: Path, initialised: bool) -> None:
    root = tmp_path / "ws"
    ws = init_workspace(root) if initialised else Workspace(root)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with Registry(ws) as reg:
        assert (reg.models(), reg.versions(), reg.audit(), reg.snapshot(), reg.orphans(), reg.verify()) == (
            [], [], [], ([], [], []), [], [])
        assert reg.state_at("m", 1e12) is None
        for call in (lambda: reg.model("m"), lambda: reg.version("m", "v1"), lambda: reg.verify("m")):
            with pytest.raises(RegistryError, match="no model"):
                call()
        # operations on a model that is not there are refusals, and write no registry either
        for call in (lambda: reg.canary("m", "v1", 10), lambda: reg.promote("m", "v1"), lambda: reg.abort("m"),
                     lambda: reg.rollback("m"), lambda: reg.prune("m", 1), lambda: reg.set_policy("m", {})):
            with pytest.raises(RegistryError, match="no model"):
                call()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (ws.registry_dir / DB_FILE).exists()
