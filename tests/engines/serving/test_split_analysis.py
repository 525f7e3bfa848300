"""The canary split is sticky and exact; the analysis loop decides abort, rollback, step and
promote from real policy judgments of real tallies (no server needed)."""

from __future__ import annotations

from trainledger.engines.registry.types import AuditEntry, ModelState
from trainledger.engines.serving.analysis import Analysis
from trainledger.engines.serving.metrics import Tally
from trainledger.engines.serving.split import BUCKETS, Loaded, Route, key_bucket, on_canary, sequence_bucket


def test_raising_the_share_never_moves_a_key_off_the_canary() -> None:
    keys = [f"user-{i}" for i in range(5000)]
    on = {p: {k for k in keys if on_canary(key_bucket("m", "v2@1.0", k), p)} for p in (1, 10, 25, 50, 99)}
    assert on[1] <= on[10] <= on[25] <= on[50] <= on[99]
    assert abs(len(on[10]) / len(keys) - 0.10) < 0.02
    other_salt = {k for k in keys if on_canary(key_bucket("m", "v3@2.0", k), 10)}
    assert other_salt != on[10]  # a new canary draws its own keys


def test_the_keyless_sequence_sends_exactly_the_share() -> None:
    assert sorted(sequence_bucket(n) for n in range(BUCKETS)) == list(range(BUCKETS))
    a, c = Loaded("v1", "a", None, 0.0), Loaded("v2", "c", None, 0.0)
    route = Route("m", a, c, 10, "s")
    picks = [route.pick(None).version for _ in range(BUCKETS)]  # type: ignore[union-attr]
    assert picks.count("v2") == 1000
    assert max(len(run) for run in "".join("c" if p == "v2" else "a" for p in picks).split("a")) <= 2
    assert {route.pick("same").version for _ in range(50)} == {route.pick("same").version}  # type: ignore[union-attr]


def _state(**kw) -> ModelState:  # type: ignore[no-untyped-def]
    base = dict(name="m", kind="lvm-amn", active="v1", previous=None, canary=None, traffic=0, condition=None,
                condition_reason=None, versions=3, updated_at=0.0, policy={"window_s": 1.0, "min_requests": 5})
    return ModelState(**{**base, **kw})


def _entry(action: str, to: str, t: float, details: dict | None = None) -> AuditEntry:
    return AuditEntry(1, t, "u", "h", "m", action, "v1", to, "", details or {}, "v1", None, 0)


def _feed(an: Analysis, tally: Tally, t0: float, seconds: float, rps: int, error_every: int = 0):  # type: ignore[no-untyped-def]
    """Tick every 0.2 s for `seconds`, adding rps/5 requests per tick; the first decision, if any."""
    t = t0
    while t < t0 + seconds:
        for _ in range(rps // 5):
            tally.requests += 1
            tally.latency_s += 0.002
            if error_every and tally.requests % error_every == 0:
                tally.errors += 1
        t += 0.2
        d = an.tick(t, lambda v: tally, 100 << 20)
        if d is not None:
            return d, t
    return None, t


def test_a_failing_canary_is_aborted_at_the_first_failed_window_with_its_figures() -> None:
    an, tally = Analysis(), Tally()
    an.follow(_state(canary="v2", traffic=10), [_entry("canary", "v2", 0.0)], 0.0)
    d, t = _feed(an, tally, 0.0, 5.0, rps=100, error_every=3)  # a third of the answers fail
    assert d is not None and d.action == "abort" and d.version == "v2"
    assert t <= 1.0 + 0.2 + 0.2 + 1e-9  # the first window (1 s) plus a tick
    assert d.figures["threshold"] == "error_rate" and d.figures["observed"] > 0.15
    assert d.figures["window"]["requests"] >= 5 and "error rate" in d.reason and "requests" in d.reason
    assert an.subject is None  # nothing more is decided about it


def test_a_healthy_canary_steps_through_its_plan_and_promotes_at_100() -> None:
    an, tally = Analysis(), Tally()
    plan = {"steps": [10, 50, 100], "interval_s": 2.0, "step": 0}
    an.follow(_state(canary="v2", traffic=10), [_entry("canary", "v2", 0.0, {"plan": plan})], 0.0)
    d, t = _feed(an, tally, 0.0, 5.0, rps=100)
    assert d is not None and (d.action, d.traffic, d.plan["step"]) == ("step", 50, 1)
    assert 2.0 <= t < 2.5
    an.follow(_state(canary="v2", traffic=50), [_entry("canary", "v2", t, {"plan": d.plan})], t)
    d2, t2 = _feed(an, tally, t, 5.0, rps=100)
    assert d2 is not None and d2.action == "promote" and t2 - t >= 2.0


def test_a_canary_without_enough_traffic_holds_its_step() -> None:
    an, tally = Analysis(), Tally()
    plan = {"steps": [10, 100], "interval_s": 1.0, "step": 0}
    an.follow(_state(canary="v2", traffic=10), [_entry("canary", "v2", 0.0, {"plan": plan})], 0.0)
    assert _feed(an, tally, 0.0, 4.0, rps=0)[0] is None


def test_a_promoted_version_failing_its_bake_is_rolled_back_and_an_old_promote_is_not_baked() -> None:
    an, tally = Analysis(bake_s=10.0), Tally()
    an.follow(_state(active="v2", previous="v1"), [_entry("promote", "v2", 0.0)], 0.5)
    assert an.subject == "bake"
    d, _ = _feed(an, tally, 0.5, 3.0, rps=100, error_every=2)
    assert d is not None and d.action == "rollback" and d.figures["subject"] == "bake"
    later = Analysis(bake_s=10.0)
    later.follow(_state(active="v2"), [_entry("promote", "v2", 0.0)], 11.0)
    assert later.subject is None
