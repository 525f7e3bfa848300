"""The operations that change what is live: canary, promote, abort, rollback.

A mixin of store.Registry, kept apart so each file has one job: store.py owns the
transaction, the audit entry and the reads; these say what each operation may do and
what it changes. Each refuses rather than guesses (Argo Rollouts users were bitten by an
`abort` with no canary that took down the stable version: here it is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainledger.engines.registry.types import Change, RegistryError, RegistryUsageError

if TYPE_CHECKING:
    from trainledger.engines.registry.db import Database


MAX_STEPS = 20


def canary_plan(steps: Any, interval_s: Any) -> dict[str, Any]:
    """A validated canary plan: steps strictly rising whole percents from 1 to 100 (100, if
    there, means promote), at most MAX_STEPS of them; an interval in seconds above 0."""
    if not isinstance(steps, (list, tuple)) or not steps or len(steps) > MAX_STEPS:
        raise RegistryUsageError(f"canary steps must be 1 to {MAX_STEPS} percents, not {steps!r}")
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 100:
            raise RegistryUsageError(f"a canary step is a whole percent from 1 to 100, not {step!r}")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise RegistryUsageError(f"canary steps must rise: {list(steps)}")
    if steps[0] == 100:
        raise RegistryUsageError("the first canary step must be below 100 (100 means promote)")
    if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) or not 0 < interval_s <= 86_400:
        raise RegistryUsageError(f"the canary interval must be above 0 s and at most a day, not {interval_s!r}")
    return {"steps": list(steps), "interval_s": float(interval_s)}


class LiveOps:
    """canary / promote / abort / rollback; needs the Registry's _run, _require_*, _activatable."""

    def canary(self, model: str, version: str, traffic: int, reason: str = "",
               plan: dict[str, Any] | None = None) -> Change:  # fmt: skip
        """Send `traffic` % (1-99) of requests to `version`; raising or lowering the same canary's
        share is allowed, a second canary is refused until the first is promoted or aborted.

        `plan` ({"steps": [10, 25, 50, 100], "interval_s": 60.0}, from canary_plan()) is kept in
        the audit entry's details with the step now taken: the port server advances one step per
        passing interval and promotes at 100 (engines/serving/analysis.py)."""
        if isinstance(traffic, bool) or not isinstance(traffic, int) or not 1 <= traffic <= 99:
            raise RegistryUsageError(f"canary traffic must be a whole percent from 1 to 99, not {traffic!r}")
        if plan is not None:
            plan = canary_plan(plan.get("steps"), plan.get("interval_s"))
            if traffic not in plan["steps"]:
                raise RegistryUsageError(f"canary traffic {traffic} % is not one of the steps {plan['steps']}")
            plan["step"] = plan["steps"].index(traffic)

        def body(db: Database, now: float) -> Change:
            state = self._require_model(db, model)
            target = self._require_version(db, model, version)
            if state.active is None:
                raise RegistryError(f"{model} has no active version for the other {100 - traffic} %: promote one")
            if target.version == state.active:
                raise RegistryError(f"{model} {version} is the active version already")
            if state.canary and state.canary != target.version:
                raise RegistryError(f"{model} {state.canary} is on canary at {state.traffic} %: "
                                    f"promote or abort it first")  # fmt: skip
            self._activatable(db, target, "canary", now)
            before = state.traffic if state.canary == target.version else 0
            db.update_model(model, now, canary=target.version, traffic=traffic, condition=None,
                            condition_reason=None)  # fmt: skip
            db.update_version(model, target.version, status="canary",
                              deployed_at=target.deployed_at or now)  # fmt: skip
            msg = (f"{model} {target.version} on canary: {before} % -> {traffic} % of requests "
                   f"({state.active} keeps {100 - traffic} %)")  # fmt: skip
            details: dict[str, Any] = {"reason": reason, "traffic_from": before, "traffic_to": traffic}
            if plan is not None:
                details["plan"] = plan
                msg += f"; step {plan['step'] + 1} of {len(plan['steps'])}, every {plan['interval_s']:g} s"
            return Change("canary", model, state.active, target.version, msg, details=details)

        return self._guard(model, version, lambda: self._run(model, "canary", body))

    def promote(self, model: str, version: str | None = None, reason: str = "",
                details: dict[str, Any] | None = None) -> Change:  # fmt: skip
        """Make the canary (or the named version) active; the version it replaces becomes the
        rollback target. A canary of another version is cleared (back to 0 %). `details` go into
        the audit entry as well (the console's {"provenance": ...} when a promotion was typed past
        stale or contradicted claims); they cannot replace the entry's own fields."""

        def body(db: Database, now: float) -> Change:
            state = self._require_model(db, model)
            target = self._new_active(db, state, version or state.canary, "promote", now,
                                      "has no canary to promote; name the version to promote")  # fmt: skip
            cleared = state.canary if state.canary and state.canary != target.version else None
            if cleared:
                db.update_version(model, cleared, status="inactive")
            if state.active:
                db.update_version(model, state.active, status="inactive")
            db.update_version(model, target.version, status="active", deployed_at=target.deployed_at or now)
            db.update_model(model, now, active=target.version, previous=state.active or state.previous,
                            canary=None, traffic=0, condition=None, condition_reason=None)  # fmt: skip
            moved = f"{100 - state.traffic if state.canary == target.version else 100} % of requests move"
            msg = (f"{model}: {state.active or 'nothing'} -> {target.version} active ({moved}); "
                   f"rollback target {state.active or state.previous or 'none'}")  # fmt: skip
            if cleared:
                msg += f"; canary {cleared} cleared"
            return Change("promote", model, state.active, target.version, msg,
                          details={**(details or {}), "reason": reason, "cleared_canary": cleared})  # fmt: skip

        return self._guard(model, version, lambda: self._run(model, "promote", body))

    def abort(self, model: str, reason: str = "", figures: dict[str, Any] | None = None) -> Change:
        """Canary back to 0 %; refused when there is none (the active version is never touched)."""

        def body(db: Database, now: float) -> Change:
            state = self._require_model(db, model)
            if state.canary is None:
                raise RegistryError(f"{model} has no canary to abort; {state.active or 'nothing'} stays active")
            db.update_version(model, state.canary, status="aborted")
            why = reason or ("automatic: " + str(figures.get("reason", "")) if figures else "")
            db.update_model(model, now, canary=None, traffic=0, condition="aborted", condition_reason=why or None)
            msg = f"{model}: canary {state.canary} aborted ({state.traffic} % -> 0 %), serving {state.active}"
            details: dict[str, Any] = {"reason": reason, "traffic_from": state.traffic, "automatic": bool(figures)}
            if figures:
                details["figures"] = figures
            return Change("abort", model, state.canary, state.active, msg, details=details)

        return self._run(model, "abort", body)

    def rollback(self, model: str, version: str | None = None, reason: str = "",
                 figures: dict[str, Any] | None = None) -> Change:  # fmt: skip
        """At once to the rollback target (or the named version), clearing any canary, no steps."""

        def body(db: Database, now: float) -> Change:
            state = self._require_model(db, model)
            target = self._new_active(db, state, version or state.previous, "rollback", now,
                                      "has no rollback target; name the version to roll back to")  # fmt: skip
            if state.canary and state.canary != target.version:
                db.update_version(model, state.canary, status="inactive")
            if state.active:
                db.update_version(model, state.active, status="rolled_back")
            db.update_version(model, target.version, status="active", deployed_at=target.deployed_at or now)
            db.update_model(model, now, active=target.version, canary=None, traffic=0, condition=None,
                            condition_reason=None, previous=self._next_target(db, model, target.version,
                                                                              state.active))  # fmt: skip
            msg = f"{model}: rolled back {state.active or 'nothing'} -> {target.version} (all traffic)"
            if state.canary and state.canary != target.version:
                msg += f"; canary {state.canary} cleared"
            details: dict[str, Any] = {"reason": reason, "cleared_canary": state.canary, "automatic": bool(figures)}
            if figures:
                details["figures"] = figures
            return Change("rollback", model, state.active, target.version, msg, details=details)

        return self._guard(model, version, lambda: self._run(model, "rollback", body))

    def _next_target(self, db: Database, model: str, active: str, left: str | None) -> str | None:
        """After a rollback to `active`: the newest earlier active version still fit to go back to
        (not corrupt, not pruned, and not one a rollback moved off: a second rollback walks back
        through history instead of landing on what the first one left)."""
        statuses = {v.version: v for v in db.versions(model)}
        for name in db.actives_newest_first(model):
            v = statuses.get(name)
            if name in (active, left) or v is None or v.status in ("corrupt", "rolled_back") or v.pruned_at is not None:
                continue
            return name
        return None

    def _new_active(self, db: Database, state: Any, name: str | None, action: str, now: float,
                    missing: str) -> Any:  # fmt: skip
        """The version `name` that promote or rollback makes active: it exists, is not the active
        one already, and its bytes still match (else it is refused and marked corrupt)."""
        if name is None:
            raise RegistryError(f"{state.name} {missing}")
        target = self._require_version(db, state.name, name)
        if target.version == state.active:
            raise RegistryError(f"{state.name} {target.version} is the active version already")
        self._activatable(db, target, action, now)
        return target

    def _guard(self, model: str, version: str | None, call: Callable[[], Change]) -> Change:
        """Validate names before anything opens, so `../` or NUL never reaches a query or a path."""
        from trainledger.engines.registry.store import check_name

        check_name(model, "model name")
        if version is not None:
            check_name(version, "version")
        return call()
