"""The bookkeeping every training loop does, in one place: loop.Trainer (torch) and
mlx_backend.MLXTrainer (MLX) both call it, so a run's best, early stop and checkpoint
pacing mean the same on every backend.

`Bookkeeper` owns, for one run:

- the train-row window: means of the loss parts since the last train row, and throughput;
- the primary metric and its direction ("min" unless the task declares "max");
- the best of the run (metric, value, epoch, step) and the one place that writes its
  pointer: the `best` checkpoint (through the backend's own save function) and the `best`
  event that names it;
- early stopping: validations since the best, against `patience`;
- throttling of mid-run `last` checkpoints to one every `last_every` seconds.

`record_end` writes the end of a run: the final `last` checkpoint, run.json's summary with
the best, and the `stopped` event of a stopped run.

The one definition of best is `is_better`: a finite value strictly better than the best so
far in the metric's direction. NaN and ±inf are never best; a tie keeps the earlier best
(the earliest epoch reaching a value wins, as the console's best marker does). The model
registry reads `checkpoints/best.json`, which only `Bookkeeper.validated` causes to be
written. Nothing here imports torch or MLX.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainledger.engines.metrics.writer import MetricsWriter
    from trainledger.engines.training.loop_parts import RunResult

# checkpoints.CHECKPOINT_DIR + the best tag; spelled here so this module needs no torch
BEST_CHECKPOINT = "checkpoints/best.safetensors"


def primary_direction(primary: str, directions: Mapping[str, str]) -> str:
    """"min" or "max" for the primary metric; "min" where the task declares none."""
    direction = directions.get(primary, "min")
    if direction not in ("min", "max"):
        raise ValueError(f"direction of {primary!r} is {direction!r}; expected 'min' or 'max'")
    return direction


def is_better(value: float, best: float | None, direction: str) -> bool:
    """Whether `value` is a new best over `best` (None: no best yet) in `direction`.

    Only a finite value can be best; a non-finite `best` (from an old run folder) counts as
    none. Strictly better only: on a tie the earlier best stays.
    """
    if not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value < best if direction == "min" else value > best


class Window:
    """Means of the loss parts over the steps since the last train row, and the throughput.
    Values come in as floats (each backend turns its scalars into floats)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.samples = 0
        self.started = time.perf_counter()

    def add(self, parts: Mapping[str, float], samples: int) -> None:
        for key, value in parts.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.steps += 1
        self.samples += samples

    def row(self, prefix: str) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        means = {f"{prefix}{k}": v / self.steps for k, v in self.sums.items()}
        return {**means, "samples_per_s": self.samples / elapsed, "steps_per_s": self.steps / elapsed}


class Bookkeeper:
    """The best, early stop and checkpoint pacing of one run; see the module docstring.

    `best` and `epochs_done` carry a resumed run's state: patience counts the epochs since
    its best. `clock` is for tests (a monotonic clock in seconds).
    """

    def __init__(
        self,
        model_name: str,
        primary: str,
        directions: Mapping[str, str],
        *,
        patience: int,
        last_every: float,
        best: dict[str, Any] | None = None,
        epochs_done: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_name = model_name
        self.primary = primary
        self.direction = primary_direction(primary, directions)
        self.patience = patience
        self.last_every = last_every
        self.best = best
        self.since_best = epochs_done - int(best["epoch"]) if best else 0
        self.window = Window()
        self._clock = clock
        self._last_saved = clock()

    def validated(
        self, metrics: Mapping[str, float], *, step: int, epoch: int, writer: MetricsWriter,
        save_best: Callable[[dict[str, Any]], Any],
    ) -> bool:  # fmt: skip
        """Record the validation after `epoch`; True when it is a new best. Then (and only
        then) `save_best(info)` writes the best checkpoint and a `best` event points at it."""
        value = float(metrics[self.primary])
        previous = None if self.best is None else self.best["value"]
        if not is_better(value, previous, self.direction):
            self.since_best += 1
            return False
        self.best = {"metric": self.primary, "value": value, "epoch": epoch, "step": step}
        save_best({"model": self.model_name, "epoch": epoch, "step": step, "metrics": dict(metrics)})
        writer.event("best", f"{self.primary} {value:.4g}", step=step, epoch=epoch, metric=self.primary,
                     value=value, previous=previous, checkpoint=BEST_CHECKPOINT)  # fmt: skip
        self.since_best = 0
        return True

    def early_stop_due(self) -> bool:
        """Whether `patience` validations in a row brought no new best (patience 0: never)."""
        return bool(self.patience and self.since_best >= self.patience)

    def write_early_stop(self, writer: MetricsWriter, *, step: int, epoch: int) -> None:
        """The `early_stop` event (call when early_stop_due)."""
        best = self.best
        held = f"best {best['value']:.4g} at epoch {best['epoch']}" if best else "no finite value yet"
        writer.event("early_stop", f"no better {self.primary} for {self.since_best} epochs ({held})", step=step,
                     epoch=epoch, metric=self.primary, patience=self.patience,
                     best_epoch=best["epoch"] if best else None)  # fmt: skip

    def save_last_if_due(self, save_last: Callable[[], Any]) -> bool:
        """Call `save_last()` when `last_every` seconds have passed since the start or the
        previous mid-run `last` checkpoint (one with fsync each short epoch costs several %
        of steps/s); True if it did. The end of a run always writes one, outside this."""
        if self._clock() - self._last_saved < self.last_every:
            return False
        save_last()
        self._last_saved = self._clock()
        return True


def record_end(writer: MetricsWriter, model_name: str, result: RunResult, stop_reason: str,
               save_last: Callable[[dict[str, Any]], Any]) -> None:  # fmt: skip
    """The end of a run on either backend: `save_last(info)` writes the `last` checkpoint,
    run.json's summary gets the best, and a stopped run its `stopped` event and status."""
    info = {"model": model_name, "epoch": result.epochs_done, "step": result.step}
    save_last({**info, "status": result.status})
    writer.update(summary={"best": result.best, **info, "early_stopped": result.early_stopped})
    if result.status == "stopped":
        writer.event("stopped", f"stopped by {stop_reason}", step=result.step, reason=stop_reason)
        writer.finish("stopped")
