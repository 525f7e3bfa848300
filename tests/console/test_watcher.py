"""The one watcher: typed routing, immutable messages with fields, and it never dies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from trainledger.console.app import TrainledgerApp
from trainledger.console.messages import (
    CaptureChanged,
    ChangeMessage,
    PortsChanged,
    RegistryChanged,
    RunFilesChanged,
    RunsChanged,
)
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.panes.versions import VersionsPane
from trainledger.console.watcher import WorkspaceWatcher, messages_for
from trainledger.engines.workspace import classify_change, init_workspace


def test_change_messages_are_immutable_and_copy_their_fields() -> None:
    m = RegistryChanged("lora-lm")
    copy = m.copy()
    assert copy is not m and isinstance(copy, RegistryChanged) and copy.model == "lora-lm"
    with pytest.raises(AttributeError):
        m.model = "other"  # type: ignore[misc]
    assert RunFilesChanged("r1", frozenset({"metrics"})).copy().kinds == frozenset({"metrics"})
    assert not RegistryChanged.bubble and not RunsChanged.bubble


def test_only_the_registry_notice_is_a_registry_change(tmp_path: Path) -> None:
    """registry.db and its -wal/-shm change when a reader opens them, artifacts before their
    commit: only registry/changed, rewritten after each commit, means something changed."""
    root = tmp_path
    notice = classify_change(root, root / "registry" / "changed")
    assert notice is not None and notice.kind == "registry"
    for noise in ("registry.db", "registry.db-wal", "registry.db-shm"):
        assert classify_change(root, root / "registry" / noise) is None
    assert classify_change(root, root / "registry" / "artifacts" / "ab" / ("ab" * 32)) is None
    msgs = messages_for([notice, notice])
    assert [(type(m), m.model) for m in msgs] == [(RegistryChanged, None)]


def test_each_message_reaches_only_the_subscribers_of_its_type(tmp_path: Path) -> None:
    watcher = WorkspaceWatcher(tmp_path)
    got: dict[str, list[ChangeMessage]] = {"runs": [], "registry": [], "all": []}
    watcher.subscribe(got["runs"].append, RunFilesChanged, RunsChanged)
    watcher.subscribe(got["registry"].append, RegistryChanged)
    watcher.subscribe(got["all"].append)
    sent = [RegistryChanged("m1"), RunFilesChanged("r1", frozenset({"metrics"})), PortsChanged(9001)]
    watcher.dispatch(sent)
    assert [type(m) for m in got["runs"]] == [RunFilesChanged]
    assert [(type(m), m.model) for m in got["registry"]] == [(RegistryChanged, "m1")]
    assert [type(m) for m in got["all"]] == [RegistryChanged, RunFilesChanged, PortsChanged]
    assert got["registry"][0] is not sent[0] and got["all"][0] is not got["registry"][0]


async def test_a_raising_subscriber_does_not_stop_the_watcher(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    errors: list[str] = []
    watcher = WorkspaceWatcher(ws.root, on_error=errors.append)
    seen: list[ChangeMessage] = []
    calls = 0

    def flaky(message: ChangeMessage) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a pane's handler broke")

    watcher.subscribe(flaky, CaptureChanged)
    watcher.subscribe(seen.append, CaptureChanged)
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.sleep(0.5)  # let the watch start
        for n in range(2):
            (ws.captures_dir / f"s{n}.jsonl").write_text("{}\n")
            for _ in range(100):
                if calls > n and len(seen) > n:
                    break
                await asyncio.sleep(0.05)
        assert calls >= 2, "the change after the failure never arrived"
        assert len(seen) >= 2, "the other subscriber missed a change"
        assert len(errors) == 1 and "RuntimeError" in errors[0]  # said once
        assert not task.done()
    finally:
        watcher.stop()
        await asyncio.wait_for(task, 5)


async def test_in_the_app_a_registry_change_reaches_only_the_versions_pane(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    app = TrainledgerApp(ws, watch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.5)
        versions = app.query_one(VersionsPane)  # mounted after the first paint, well within the pause
        curves = app.query_one(CurvesPane)
        sent_to_curves: list[type] = []
        post = curves.post_message

        def spy(message):  # type: ignore[no-untyped-def]
            sent_to_curves.append(type(message))
            return post(message)

        curves.post_message = spy  # type: ignore[method-assign]
        before = versions.loads
        (ws.registry_dir / "changed").write_text('{"audit": 1}')  # what the store writes after a commit
        for _ in range(100):
            if versions.loads > before:
                break
            await pilot.pause(0.05)
        assert versions.loads > before, "the Versions pane missed the registry change"
        (ws.runs_dir / "r1").mkdir()  # a change the Curves pane does want
        for _ in range(100):
            if RunsChanged in sent_to_curves:
                break
            await pilot.pause(0.05)
        assert RunsChanged in sent_to_curves
        assert RegistryChanged not in sent_to_curves and PortsChanged not in sent_to_curves
