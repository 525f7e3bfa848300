"""Run the registered checks on one subject: `run_checks(ws, subject, only=None, options=None,
allow_torch=True) -> list[CheckResult]`.

Every module `engines/checks/*_checks.py` and `engines/checks/model_*.py` is imported first
(pkgutil), so each one's `@check` functions are in base.CHECKS. A check runs when its kinds
match the subject's kind (a kind pattern may end in `*`: `lvm-*`), or when it is for every
kind. With `allow_torch=False` (the console, a report built without torch) a check that
loads the model is not run: it comes back skipped, saying so. An exception escaping a check
is a failed result naming the exception's type and message (never a traceback); a check
module that does not import is a failed result under the module's name, so a broken check
can never pass CI by disappearing.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from fnmatch import fnmatchcase
from typing import Any

from trainledger.engines.checks.base import CHECKS, CheckContext, CheckResult, Registered
from trainledger.engines.provenance.subject import Subject
from trainledger.engines.workspace import Workspace

PACKAGE = "trainledger.engines.checks"
_import_errors: dict[str, str] = {}  # module name -> "ErrType: message"
_imported = False


def is_check_module(name: str) -> bool:
    return name.endswith("_checks") or name.startswith("model_")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`TypeName: first line of the message`, short, for a reason."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:limit]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_checks() -> dict[str, str]:
    """Import every check module once; returns the modules that failed, with why."""
    global _imported
    if _imported:
        return dict(_import_errors)
    package = importlib.import_module(PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.ispkg or not is_check_module(info.name):
            continue
        try:
            importlib.import_module(f"{PACKAGE}.{info.name}")
        except Exception as exc:  # a broken module is reported, not fatal
            _import_errors[info.name] = one_line(exc)
    _imported = True
    return dict(_import_errors)


def check_names() -> list[str]:
    load_checks()
    return sorted(CHECKS)


def applies(reg: Registered, kind: str | None) -> bool:
    if reg.kinds is None:
        return True
    return kind is not None and any(fnmatchcase(kind, pattern) for pattern in reg.kinds)


def _skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, None, None, reason)


def run_one(reg: Registered, ctx: CheckContext) -> CheckResult | None:
    """One check, with any exception turned into a failed result."""
    try:
        result = reg.fn(ctx)
    except Exception as exc:
        return CheckResult(reg.name, False, None, f"the check raised {one_line(exc)}")
    if result is None:
        return None
    if not isinstance(result, CheckResult):
        return CheckResult(reg.name, False, None, f"the check returned {type(result).__name__}, not a CheckResult")
    return result if result.name == reg.name else dataclasses.replace(result, name=reg.name)


def run_checks(ws: Workspace, subject: Subject, only: str | None = None, options: dict[str, Any] | None = None,
               allow_torch: bool = True) -> list[CheckResult]:  # fmt: skip
    """The results of the checks that apply to `subject`, in name order.

    `only`: just that check (a ValueError listing the names if there is none by that name);
    asked for by name, a check that does not apply comes back skipped with the reason
    instead of being left out.
    """
    errors = load_checks()
    if only is not None and only not in CHECKS:
        raise ValueError(f"no check {only!r}; checks: {', '.join(sorted(CHECKS))}")
    ctx = CheckContext(ws, subject, dict(options or {}))
    results: list[CheckResult] = []
    for name in sorted(CHECKS) if only is None else [only]:
        reg = CHECKS[name]
        if not applies(reg, subject.kind):
            if only is not None:
                kinds, kind = ", ".join(reg.kinds or ()), subject.kind or "of no known kind"
                results.append(_skipped(name, f"applies to {kinds}; {subject.label} is {kind}"))
            continue
        if reg.needs_torch and not allow_torch:
            results.append(_skipped(name, "loads the model (torch): run `trainledger check` for it"))
            continue
        result = run_one(reg, ctx)
        if result is None and only is not None:
            result = _skipped(name, f"does not apply to {subject.label}")
        if result is not None:
            results.append(result)
    if only is None:
        for module, why in sorted(errors.items()):
            results.append(CheckResult(module, False, None, f"check module {module} did not import: {why}"))
    return results
