"""The automatic-rollback policy on recorded windows: thresholds, windows, Argo's limits, figures."""

from __future__ import annotations

import json
import math

import pytest

from trainledger.engines.registry.policy import (
    GIB,
    Measurement,
    Thresholds,
    Verdict,
    Window,
    evaluate,
    judge,
)
from trainledger.engines.registry.types import RegistryUsageError

T = Thresholds()


def win(i: int = 0, requests: int = 40, errors: int = 0, latency: float | None = 120.0,
        memory: int | None = 2 * GIB, error: str | None = None) -> Window:  # fmt: skip
    return Window(30.0 * i, 30.0 * (i + 1), requests, errors, latency, memory, error)


def good(i: int) -> Window:
    return win(i)


def bad(i: int) -> Window:
    return win(i, errors=20)


def broken(i: int, text: str = "metrics endpoint timed out") -> Window:
    return win(i, 0, 0, None, None, error=text)


def thin(i: int) -> Window:
    return win(i, requests=5)


# --------------------------------------------------------------------------- thresholds


def test_defaults_are_seed_004s() -> None:
    assert T.to_dict() == {
        "max_error_rate": 0.15, "max_latency_ms": 5000.0, "max_memory_gb": 6.0, "window_s": 30.0,
        "min_requests": 20, "failure_limit": 0, "consecutive_error_limit": 4,
    }  # fmt: skip
    assert T.max_memory_bytes == 6 * 1024**3 and T.max_mean_latency_ms == 5000.0


def test_from_dict_round_trip_and_defaults_for_missing_keys() -> None:
    t = Thresholds(max_error_rate=0.1, max_latency_ms=800, max_memory_gb=2.5, window_s=10, min_requests=5,
                   failure_limit=2, consecutive_error_limit=1)  # fmt: skip
    assert Thresholds.from_dict(t.to_dict()) == t
    assert Thresholds.from_dict(json.loads(json.dumps(t.to_dict()))).to_dict() == t.to_dict()
    assert Thresholds.from_dict({}) == T
    partial = Thresholds.from_dict({"min_requests": 50})
    assert partial.min_requests == 50 and partial.max_error_rate == 0.15
    assert isinstance(Thresholds.from_dict({"max_latency_ms": 5000}).to_dict()["max_latency_ms"], float)
    assert Thresholds(max_memory_gb=2).max_memory_gb == 2.0 and isinstance(Thresholds(window_s=1).window_s, float)


@pytest.mark.parametrize("d, words", [
    ({"max_eror_rate": 0.1}, "unknown threshold max_eror_rate"),
    ({"max_error_rate": "0.1"}, "max_error_rate must be a number"),
    ({"max_error_rate": True}, "max_error_rate must be a number"),
    ({"min_requests": 20.0}, "min_requests must be a whole number"),
    ({"failure_limit": False}, "failure_limit must be a whole number"),
    ({"min_requests": None}, "min_requests must be a whole number"),
    ({"max_latency_ms": -1}, ">= 0"),
    ({"consecutive_error_limit": -1}, ">= 0"),
    ({"max_memory_gb": float("nan")}, "finite"),
    ({"window_s": float("inf")}, "finite"),
    ({"max_error_rate": 1.5}, "fraction from 0 to 1"),
    ({"max_error_rate": -0.1}, ">= 0"),
    ({"window_s": 0}, "window_s must be above 0"),
])  # fmt: skip
def test_from_dict_refuses_bad_input(d: dict, words: str) -> None:
    with pytest.raises(RegistryUsageError, match=words.replace("(", r"\(")):
        Thresholds.from_dict(d)


def test_bad_thresholds_cannot_be_built_by_hand_either() -> None:
    with pytest.raises(RegistryUsageError):
        Thresholds(min_requests=-3)
    with pytest.raises(RegistryUsageError, match="mapping"):
        Thresholds.from_dict([("min_requests", 3)])  # type: ignore[arg-type]
    Thresholds(max_error_rate=1).validate()  # both ends of 0..1 allowed
    Thresholds(max_error_rate=0).validate()


# --------------------------------------------------------------------------- one window


def test_each_threshold_fails_alone_with_its_observed_value_and_limit() -> None:
    m = judge(T, win(requests=41, errors=9))
    assert (m.outcome, m.threshold, m.failed, m.limit) == ("fail", "error_rate", ("error_rate",), 0.15)
    assert m.observed == pytest.approx(9 / 41)
    assert all(fact in m.reason for fact in ("22.0%", "15.0%", "30 s", "41 requests"))

    m = judge(T, win(latency=6200.0))
    assert (m.outcome, m.threshold, m.observed, m.limit, m.failed) == (
        "fail", "mean_latency_ms", 6200.0, 5000.0, ("mean_latency_ms",))  # fmt: skip
    assert "6200 ms" in m.reason and "5000 ms" in m.reason

    m = judge(T, win(memory=7 * GIB))
    assert (m.outcome, m.threshold, m.observed, m.limit, m.failed) == (
        "fail", "memory_bytes", 7 * GIB, 6 * GIB, ("memory_bytes",))  # fmt: skip
    assert "7.00 GiB" in m.reason and "6 GiB" in m.reason


def test_several_failing_report_the_first_and_list_all() -> None:
    m = judge(T, win(errors=20, latency=9000.0, memory=8 * GIB))
    assert m.threshold == "error_rate"
    assert m.failed == ("error_rate", "mean_latency_ms", "memory_bytes")
    m = judge(T, win(latency=9000.0, memory=8 * GIB))
    assert m.threshold == "mean_latency_ms" and m.failed == ("mean_latency_ms", "memory_bytes")


def test_limits_are_strict_15_percent_exactly_passes() -> None:
    assert judge(T, win(requests=20, errors=3)).outcome == "pass"  # 15.0 % exactly
    assert judge(T, win(requests=100, errors=15)).outcome == "pass"
    assert judge(T, win(requests=1000, errors=151)).outcome == "fail"  # 15.1 %
    assert judge(T, win(latency=5000.0)).outcome == "pass"
    assert judge(T, win(latency=5000.001)).outcome == "fail"
    assert judge(T, win(memory=6 * GIB)).outcome == "pass"
    assert judge(T, win(memory=6 * GIB + 1)).outcome == "fail"


def test_a_pass_says_what_it_saw() -> None:
    m = judge(T, win(requests=40, errors=1))
    assert m.outcome == "pass" and m.threshold is None and m.failed == ()
    assert "40 requests" in m.reason and "2.5%" in m.reason


def test_missing_latency_and_memory_are_not_judged() -> None:
    assert judge(T, win(latency=None, memory=None)).outcome == "pass"
    assert judge(T, win(errors=20, latency=None, memory=None)).threshold == "error_rate"


def test_too_few_requests_is_inconclusive_whatever_the_figures() -> None:
    m = judge(T, win(requests=19, errors=19, latency=99999.0))
    assert m.outcome == "inconclusive" and m.threshold is None and "19 requests" in m.reason and "20" in m.reason
    assert judge(T, win(requests=20)).outcome == "pass"
    assert judge(Thresholds(min_requests=0), win(requests=0, latency=None, memory=None)).outcome == "pass"


@pytest.mark.parametrize("window, words", [
    (win(latency=math.nan), "mean_latency_ms is nan"),
    (win(latency=math.inf), "mean_latency_ms is inf"),
    (win(latency=-1.0), "mean_latency_ms is negative"),
    (win(memory=-5), "memory_bytes is negative"),
    (win(requests=-1), "requests is negative"),
    (win(requests=10, errors=11), "11 errors out of 10 requests"),
    (Window(30.0, 0.0, 40, 0, 1.0, 1), "ends"),
    (Window(math.nan, 30.0, 40, 0, 1.0, 1), "start is nan"),
    (win(requests=40.0), "requests is not a whole number"),  # type: ignore[arg-type]
    (win(errors=True), "errors is not a whole number"),  # type: ignore[arg-type]
])  # fmt: skip
def test_untrustworthy_figures_are_an_error_never_a_pass(window: Window, words: str) -> None:
    m = judge(T, window)
    assert m.outcome == "error" and words in m.reason


def test_a_measurement_that_could_not_be_taken_is_an_error() -> None:
    m = judge(T, broken(0, "prometheus: connection refused"))
    assert isinstance(m, Measurement)
    assert m.outcome == "error" and "prometheus: connection refused" in m.reason
    assert Window(0, 30, 0, 0).error_rate == 0.0 and Window(0, 30, 41, 9).error_rate == pytest.approx(9 / 41)


# --------------------------------------------------------------------------- windows in a row


def test_failure_limit_0_the_first_failed_window_decides() -> None:
    v = evaluate(T, [good(0), good(1), bad(2), good(3)])
    assert isinstance(v, Verdict)
    assert (v.outcome, v.threshold, v.limit, v.window) == ("fail", "error_rate", 0.15, bad(2))
    assert v.observed == pytest.approx(0.5)
    assert len(v.measurements) == 3  # stops at the decision
    assert "50.0%" in v.reason and v.failed_windows == 1


def test_failure_limit_2_fails_on_the_third_failed_window() -> None:
    t = Thresholds(failure_limit=2)
    assert evaluate(t, [bad(0), good(1), bad(2), good(3)]).outcome == "pass"
    v = evaluate(t, [bad(0), good(1), bad(2), good(3), win(4, latency=7000.0)])
    assert (v.outcome, v.threshold, v.observed, v.window) == ("fail", "mean_latency_ms", 7000.0, win(4, latency=7000.0))
    assert v.failed_windows == 3 and len(v.measurements) == 5
    v = evaluate(t, [good(0), bad(1)])  # a failure within the limit, last: not a pass
    assert v.outcome == "inconclusive" and v.failed_windows == 1
    v = evaluate(t, [bad(0), thin(1), bad(2)])  # no window passed at all
    assert v.outcome == "inconclusive"
    v = evaluate(t, [bad(0), good(1), thin(2)])  # an inconclusive window after a pass changes nothing
    assert v.outcome == "pass"


def test_five_consecutive_errors_fail_with_limit_4_four_do_not() -> None:
    v = evaluate(T, [good(0)] + [broken(i) for i in range(1, 6)])
    assert (v.outcome, v.threshold, v.observed, v.limit, v.window) == ("fail", "consecutive_errors", 5, 4, broken(5))
    assert "5" in v.reason and "metrics endpoint timed out" in v.reason and v.consecutive_errors == 5
    v = evaluate(T, [good(0)] + [broken(i) for i in range(1, 5)])
    assert v.outcome == "inconclusive" and v.consecutive_errors == 4  # not failed, but the last one was not a pass
    assert evaluate(T, [good(0)] + [broken(i) for i in range(1, 5)] + [good(5)]).outcome == "pass"
    assert evaluate(Thresholds(consecutive_error_limit=0), [good(0), broken(1)]).threshold == "consecutive_errors"


def test_a_pass_resets_the_error_run_an_inconclusive_window_does_not() -> None:
    errors = [broken(i) for i in range(4)]
    v = evaluate(T, errors + [good(4)] + [broken(i) for i in range(5, 9)])
    assert v.outcome == "inconclusive" and v.consecutive_errors == 4 and len(v.measurements) == 9
    v = evaluate(T, errors + [thin(4), broken(5)])
    assert v.outcome == "fail" and v.threshold == "consecutive_errors" and v.observed == 5 and v.window == broken(5)


def test_a_failed_window_is_a_measurement_taken_and_resets_the_error_run_too() -> None:
    t = Thresholds(failure_limit=2)
    errors = [broken(i) for i in range(4)]
    v = evaluate(t, errors + [bad(4)] + [broken(i) for i in range(5, 9)])
    assert v.outcome == "inconclusive" and v.failed_windows == 1 and v.consecutive_errors == 4
    v = evaluate(t, errors + [bad(4)] + [broken(i) for i in range(5, 10)])
    assert v.outcome == "fail" and v.threshold == "consecutive_errors" and v.window == broken(9)


def test_no_decisive_window_is_inconclusive() -> None:
    assert evaluate(T, []).outcome == "inconclusive"
    v = evaluate(T, [thin(0), thin(1)])
    assert v.outcome == "inconclusive" and v.threshold is None and len(v.measurements) == 2
    assert evaluate(T, [broken(0)]).outcome == "inconclusive"
    assert evaluate(T, [good(0), broken(1)]).outcome == "inconclusive"
    assert evaluate(T, [good(0), thin(1)]).outcome == "pass"
    assert evaluate(T, iter([good(0)])).outcome == "pass"  # any iterable


def test_nan_windows_count_as_errors_in_a_row() -> None:
    v = evaluate(T, [win(i, latency=math.nan) for i in range(5)])
    assert v.outcome == "fail" and v.threshold == "consecutive_errors" and "mean_latency_ms is nan" in v.reason
    # a NaN between passes is never a pass itself: it leaves the verdict inconclusive
    assert evaluate(T, [good(0), win(1, latency=math.nan)]).outcome == "inconclusive"
    assert [m.outcome for m in evaluate(T, [good(0), win(1, memory=-1), good(2)]).measurements] == [
        "pass", "error", "pass"]  # fmt: skip


# --------------------------------------------------------------------------- figures


def test_figures_are_json_for_the_audit_log() -> None:
    v = evaluate(T, [good(0), win(1, requests=41, errors=9)])
    f = json.loads(json.dumps(v.figures(), allow_nan=False))
    assert f["outcome"] == "fail" and f["threshold"] == "error_rate" and f["limit"] == 0.15
    assert f["observed"] == pytest.approx(9 / 41)
    assert f["window"] == {"start": 30.0, "end": 60.0, "requests": 41, "errors": 9, "mean_latency_ms": 120.0,
                           "memory_bytes": 2 * GIB, "error": None}  # fmt: skip
    assert f["thresholds"] == T.to_dict() and f["windows"] == 2 and f["failed_windows"] == 1
    assert "22.0%" in f["reason"]
    assert f["thresholds"]["max_error_rate"] == 0.15 and f["thresholds"]["min_requests"] == 20


def test_figures_hold_no_nan_even_for_a_nan_window() -> None:
    v = evaluate(T, [win(i, latency=math.nan) for i in range(5)])
    f = json.loads(json.dumps(v.figures(), allow_nan=False))
    assert f["window"]["mean_latency_ms"] is None and f["observed"] == 5
    for verdict in (evaluate(T, [good(0)]), evaluate(T, [])):
        g = json.loads(json.dumps(verdict.figures(), allow_nan=False))
        assert g["window"] is None and g["threshold"] is None


def test_figures_of_a_window_with_figures_of_the_wrong_kind_are_still_json() -> None:
    odd = Window(0.0, 30.0, 40.0, True, math.inf, math.nan, error=None)  # type: ignore[arg-type]
    v = evaluate(Thresholds(consecutive_error_limit=0), [odd])
    assert v.outcome == "fail" and v.window == odd
    f = json.loads(json.dumps(v.figures(), allow_nan=False))
    assert f["window"]["mean_latency_ms"] is None and f["window"]["memory_bytes"] is None
    assert f["window"]["errors"] is None and f["window"]["requests"] == 40.0


def test_a_verdict_can_be_built_by_hand_with_keywords() -> None:
    w = win(3, errors=30)
    v = Verdict("fail", "by hand", threshold="error_rate", observed=0.75, limit=0.15, window=w)
    assert v.thresholds == Thresholds() and v.measurements == ()
    assert json.loads(json.dumps(v.figures()))["window"]["errors"] == 30
