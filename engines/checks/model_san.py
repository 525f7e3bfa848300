"""The SAN model checks (needs_torch): load_count and mix_factor, on the model a port serves.

load_count: the served model's tensors exported in memory with engines/san/weights.export_weights
and read back by the device loader's code (weights.load_weights): the count it returns must
equal the served model's total parameters. mix_factor: seed 000's mixFactor on the run's
validation frames (engines/san/export.validation_frames): at m = 0, .25, .5, .75, 1 the port's
output must be the frames' own heads (the baseline) at 0, the model's at 1, and its mean
absolute distance from the baseline must not fall as m grows.
"""

from __future__ import annotations

from typing import Any

from trainledger.engines.checks.base import CheckContext, CheckResult, check
from trainledger.engines.checks.model_checks import _load

MIX_FACTORS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIX_FRAMES = 64
TOLERANCE = 1e-5  # float32 arithmetic


@check("load_count", kinds=("san",), needs_torch=True)
def load_count(ctx: CheckContext) -> CheckResult:
    """The device loader (san/weights.load_weights) on the exported bytes counts the model's parameters.

    figure = the loader's count (negative: its error code); fails unless it equals the served
    model's total parameters.
    """
    from trainledger.engines.san.infer import expected_shapes
    from trainledger.engines.san.weights import describe, export_weights, load_weights

    loaded = _load(ctx, "load_count")
    if isinstance(loaded, CheckResult):
        return loaded
    predictor, evidence = loaded
    state = {k: v.detach().cpu().float().numpy() for k, v in predictor.model.state_dict().items()}
    hidden = int(state["trunk.0.weight"].shape[0])
    wanted = expected_shapes(hidden)
    blob, manifest = export_weights({name: state[name] for name in wanted})
    count = load_weights(blob, manifest)
    total = int(predictor.parameters)
    ok = count == total
    reason = f"the loader {describe(count)}; the served model has {total}" + ("" if ok else " (they differ)")
    return CheckResult("load_count", ok, count, reason,
                       {"total_params": total, "bin_bytes": len(blob)}, tuple(evidence))  # fmt: skip


def _rows(outputs: list[dict[str, Any]]) -> Any:
    import numpy as np

    from trainledger.engines.training.san import HEADS

    return np.asarray([np.concatenate([np.ravel(o[k]) for k in HEADS]) for o in outputs], dtype=np.float64)


@check("mix_factor", kinds=("san",), needs_torch=True)
def mix_factor(ctx: CheckContext) -> CheckResult:
    """mixFactor at 0, .25, .5, .75, 1 on validation frames: baseline at 0, the model at 1, distance monotonic.

    figure = the mean absolute distance from the baseline at each m; fails when m = 0 is not the
    baseline, m = 1 not the model's own output (within 1e-5), or the distance falls as m grows.
    """
    import numpy as np

    from trainledger.engines.san.export import validation_frames
    from trainledger.engines.san.infer import baseline_of
    from trainledger.engines.training.san import HEADS

    subject = ctx.subject
    if subject.run_dir is None:
        return CheckResult("mix_factor", None, None, f"{subject.label} has no run folder: no validation frames")
    config = subject.run.get("config") if isinstance(subject.run.get("config"), dict) else {}
    frames, why = validation_frames(subject.run_dir, config)
    if not frames:
        return CheckResult("mix_factor", None, None, f"no validation frames ({why})")
    loaded = _load(ctx, "mix_factor")
    if isinstance(loaded, CheckResult):
        return loaded
    predictor, evidence = loaded
    frames = frames[:MIX_FRAMES]
    baseline = np.asarray([np.concatenate([np.ravel(baseline_of(f)[k]) for k in HEADS]) for f in frames])
    model = _rows(predictor.predict({"inputs": [f["input"] for f in frames]})["outputs"])
    sweep = {}
    for m in MIX_FACTORS:
        mixed = _rows(predictor.predict({"frames": frames, "mix": m})["outputs"])
        sweep[m] = (float(np.abs(mixed - baseline).mean()), float(np.abs(mixed - model).mean()))
    problems = []
    if sweep[0.0][0] > TOLERANCE:
        problems.append(f"m=0 is {sweep[0.0][0]:.3g} from the baseline")
    if sweep[1.0][1] > TOLERANCE:
        problems.append(f"m=1 is {sweep[1.0][1]:.3g} from the model")
    dist = [sweep[m][0] for m in MIX_FACTORS]
    falls = [f"{a}->{b}" for a, b, da, db in zip(MIX_FACTORS, MIX_FACTORS[1:], dist, dist[1:]) if db < da - TOLERANCE]
    if falls:
        problems.append(f"the distance from the baseline falls at m {', '.join(falls)}")
    figure = {str(m): round(sweep[m][0], 6) for m in MIX_FACTORS}
    reason = (
        "; ".join(problems)
        if problems
        else (f"baseline at 0, the model at 1, distance rising to {dist[-1]:.3g} over {len(frames)} frames")
    )
    details = {"frames": len(frames), "from_model": {str(m): sweep[m][1] for m in MIX_FACTORS}}
    return CheckResult("mix_factor", not problems, figure, reason, details, tuple(evidence))
