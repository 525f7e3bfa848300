"""`system.jsonl`: what the trainer process costs, sampled once a second by a daemon thread.

Each row is one JSON object: `time`, `cpu_percent` (this process; 100 = one core), `rss_bytes`,
and, where NVML is importable (`pynvml`) and sees a GPU, `gpu_util_percent`,
`gpu_mem_used_bytes` and `gpu_mem_total_bytes`. A field that cannot be read is left out.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import msgspec

SYSTEM_FILE = "system.jsonl"
_encoder = msgspec.json.Encoder()


class _Nvml:
    """GPU utilisation and memory of one device through NVML; inert when NVML is missing."""

    def __init__(self, index: int = 0) -> None:
        self.handle: Any = None
        try:
            import pynvml  # optional

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:  # no module, no driver, no device: no GPU fields
            self.handle = None

    def sample(self) -> dict[str, Any]:
        if self.handle is None:
            return {}
        out: dict[str, Any] = {}
        try:
            out["gpu_util_percent"] = float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
        except Exception:
            pass
        try:
            mem = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
            out["gpu_mem_used_bytes"] = int(mem.used)
            out["gpu_mem_total_bytes"] = int(mem.total)
        except Exception:
            pass
        return out

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass


class SystemMonitor:
    """Appends a row to `<run_dir>/system.jsonl` every `interval` seconds until stopped.

    The first row is written at start, so even a short run has one; a last row at stop.
    """

    def __init__(self, run_dir: Path, interval: float = 1.0, gpu_index: int = 0) -> None:
        self.path = Path(run_dir) / SYSTEM_FILE
        self.interval = interval
        self.gpu_index = gpu_index
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "SystemMonitor":
        import psutil

        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first reading is always 0
        self._nvml = _Nvml(self.gpu_index)
        self._file = open(self.path, "ab", buffering=0)
        self._write()
        self._thread = threading.Thread(target=self._loop, name="system-monitor", daemon=True)
        self._thread.start()
        return self

    def sample(self) -> dict[str, Any]:
        row: dict[str, Any] = {"time": time.time()}
        try:
            row["cpu_percent"] = float(self._proc.cpu_percent(None))
        except Exception:
            pass
        try:
            row["rss_bytes"] = int(self._proc.memory_info().rss)
        except Exception:
            pass
        row.update(self._nvml.sample())
        return row

    def _write(self) -> None:
        try:
            self._file.write(_encoder.encode(self.sample()) + b"\n")
        except (OSError, ValueError):  # disk full or file closed: monitoring is best effort
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._write()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        self._write()
        self._file.close()
        self._nvml.close()

    def __enter__(self) -> "SystemMonitor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
