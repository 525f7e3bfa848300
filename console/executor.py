"""The thread pool behind the console's thread workers, which never holds up quitting.

Textual runs a thread worker through the event loop's default executor. Python's own
ThreadPoolExecutor joins every thread when the loop closes and again at interpreter exit,
so one worker stuck in a read (a FIFO where a file should be, a hung network mount) kept
the console from ever exiting after `q`. This pool runs the same work on daemon threads
and, when asked to shut down, waits a bounded time for them and then lets them go: the
console exits within its deadline whatever its workers do, and the CLI's own clean-up
(stopping the demo's processes) still runs.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

SHUTDOWN_WAIT_S = 1.0  # how long quitting waits for busy workers before leaving them


class DaemonThreadPool(ThreadPoolExecutor):
    """`submit` and `shutdown` of a ThreadPoolExecutor, on daemon threads, with a deadline.

    It subclasses ThreadPoolExecutor only because asyncio's `set_default_executor` asks for
    one; none of the base class's threads or queues are used.
    """

    def __init__(self, max_workers: int = 8, shutdown_wait: float = SHUTDOWN_WAIT_S) -> None:
        super().__init__(max_workers=max_workers)
        self._size = max_workers
        self._wait = shutdown_wait
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple, dict] | None]
        self._jobs = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._jobs.put((future, fn, args, kwargs))
            if self._idle == 0 and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._serve, name=f"trainledger-worker-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1 if self._idle else 0
        return future

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in threads:
            self._jobs.put(None)
        if wait:
            deadline = time.monotonic() + self._wait
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        super().shutdown(wait=False)
