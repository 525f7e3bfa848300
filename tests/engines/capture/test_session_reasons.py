"""Each session's own reject reasons in /stats, and the counts the Capture pane shows from them."""

from __future__ import annotations

from pathlib import Path

import msgspec

from trainledger.engines.capture import stats as stats_mod
from trainledger.engines.capture.live import decode_stats, server_only_session, session_counts
from trainledger.engines.capture.sessions import SessionScanner
from trainledger.engines.capture.stats import Stats


def test_stats_keep_each_sessions_own_reasons(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(stats_mod, "MAX_SESSION_KINDS", 2)
    st = Stats()
    st.count_frames("a", 2, 9, {"line: unknown field": 9}, 1.0)
    st.count_frames("b", 0, 3, {"input: expected 128 numbers": 3}, 2.0)
    st.count_frames("b", 0, 3, {"ts: missing": 1, "x": 1, "y": 1}, 3.0)
    stats = decode_stats(msgspec.json.encode(st.as_dict()))
    assert stats is not None
    assert stats.sessions["a"].rejects_by_reason == {"line: unknown field": 9}
    assert stats.sessions["b"].rejects_by_reason == {"input: expected 128 numbers": 3, "ts: missing": 1,
                                                     "other": 2}  # fmt: skip
    assert set(stats.rejects_by_reason) == {"line: unknown field", "input: expected 128 numbers",
                                            "ts: missing", "x", "y"}  # fmt: skip


def test_session_counts_add_the_server_refusals_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"not a frame\n")
    summary = SessionScanner(tmp_path).scan().sessions[0]
    st = Stats()
    st.count_frames("a", 0, 4, {"line: unknown field": 4}, 1.0)
    st.count_frames("gone", 0, 2, {"ts: missing": 2}, 1.0)
    stats = decode_stats(msgspec.json.encode(st.as_dict()))
    c = session_counts(summary, stats)
    assert (c.frames, c.file_rejected, c.server_rejected, c.rejected) == (0, 1, 4, 5)
    assert [r[0] for r in c.reasons] == ["file", "server"] and c.reasons[1][1:] == ("line: unknown field", 4)
    assert stats is not None
    only = session_counts(server_only_session(tmp_path, "gone", stats.sessions["gone"]), stats, on_disk=False)
    assert (only.rejected, only.on_disk, only.reasons) == (2, False, (("server", "ts: missing", 2),))
    assert session_counts(summary, None).rejected == 1  # no server: the file alone
