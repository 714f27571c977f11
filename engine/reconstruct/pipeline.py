"""Overlapping the stages of a video: decoding and detection ahead on one thread, finishing frames
(the reflectance and light, texture detail, rendering, encoding, writing) behind on another, while
the caller's thread runs the viewpoint and shape networks. torch and PyAV release the interpreter
lock, so on two cores the stages run side by side.

Every queue is bounded, so memory stays flat however long the video is: a stage that is ahead
waits for the one behind it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], depth: int = 3) -> Generator[T, None, None]:
    """``items`` produced on a thread, at most ``depth`` ahead of the consumer; the producer's
    exception is raised in the consumer where the item would have been. Closing the generator
    (``break``, an exception) stops the producer."""
    slots: queue.Queue = queue.Queue(depth)
    stopped = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stopped.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stopped.is_set():
                    return
            slots.put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            slots.put((_END, exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stopped.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(0.05)
        close = getattr(items, "close", None)
        if close is not None:
            close()  # the decoder's generator: release the file now, on this thread


class OrderedWorker:
    """Runs submitted calls one after another, in order, on its own thread. At most ``depth`` calls
    wait; ``submit`` blocks beyond that. The first exception a call raises is raised again by the
    next ``submit`` or by ``close`` (calls after it are skipped)."""

    def __init__(self, depth: int = 3, name: str = "finish"):
        self._calls: queue.Queue = queue.Queue(depth)
        self.error: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            if self.error is None:
                fn, args = call
                try:
                    fn(*args)
                except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
                    self.error = exc

    def _raise(self) -> None:
        if self.error is not None and not self._raised:
            self._raised = True
            raise self.error

    def submit(self, fn: Callable, *args) -> None:
        self._raise()
        self._calls.put((fn, args))

    def close(self) -> None:
        """Wait for every submitted call to finish; raise the first error."""
        if self._thread.is_alive():
            self._calls.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> OrderedWorker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # already failing: finish what was submitted, keep the first error
            self.close()
        except BaseException:  # noqa: BLE001
            pass
