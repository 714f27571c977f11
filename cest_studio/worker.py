"""The one module of the app that owns threads (its child processes are in processes.py).

* :class:`EngineWorker`: a QThread that runs engine jobs one after another (load a model,
  reconstruct a photo or a video, export). The GUI submits a job with callbacks; the callbacks run
  back on the GUI thread through queued signals. Jobs can report progress and partial results and
  be cancelled.
* :class:`PreviewWorker`: a second QThread for the live edits. It renders only the latest request
  (older ones are dropped), so slider moves never queue up behind each other or behind a long job.
* :class:`Preloader`: imports heavy modules (VTK, torch) in the background at start-up.
* :class:`TrainingProcess`, :class:`VideoProcess` (cest_studio/processes.py, importable from here):
  training and video reconstruction as child processes (QProcess).

Inference never runs on the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThread, Signal, Slot

from cest_studio.processes import (  # noqa: F401 - the app imports its child processes from here too
    ChildProcess,
    TrainingProcess,
    VideoProcess,
    python_command,
)

log = logging.getLogger("cest_studio")


@dataclass
class Job:
    name: str
    fn: Callable
    args: tuple
    tag: str = ""
    on_done: Callable | None = None
    on_error: Callable | None = None
    on_progress: Callable | None = None
    on_partial: Callable | None = None
    id: int = 0
    context: object = None
    submitted: float = field(default_factory=time.perf_counter)


def lower_thread_priority(amount: int = 5) -> None:
    """Nice the calling thread (Linux nices threads one by one; the threads it starts, such as
    torch's OpenMP workers, inherit it): on a busy machine the GUI thread then gets a core first."""
    if hasattr(os, "setpriority") and sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + amount))
        except OSError:
            pass


class _JobRunner(QObject):
    """Lives on the engine thread; runs jobs in the order they arrive."""

    @Slot()
    def setup(self) -> None:
        lower_thread_priority()

    done = Signal(int, object)
    error = Signal(int, str)
    progress = Signal(int, int, int)
    partial = Signal(int, object)
    started = Signal(int, str)

    @Slot(object)
    def run(self, job: Job) -> None:
        from cest_studio.tasks import user_message

        if job.context.stopped():
            self.error.emit(job.id, "")  # cancelled before it started: silent
            return
        self.started.emit(job.id, job.name)
        try:
            result = job.fn(job.context, *job.args)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message, never a crash
            if isinstance(exc, KeyboardInterrupt):
                self.error.emit(job.id, "")
            else:
                self.error.emit(job.id, user_message(exc))
            return
        self.done.emit(job.id, result)


class EngineWorker(QObject):
    """The engine thread, seen from the GUI: submit jobs, cancel them, follow them."""

    busy_changed = Signal(str)  # the running job's name, "" when idle
    _submit = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("cest-engine")
        self._runner = _JobRunner()
        self._runner.moveToThread(self._thread)
        self._submit.connect(self._runner.run)
        self._runner.done.connect(self._on_done)
        self._runner.error.connect(self._on_error)
        self._runner.progress.connect(self._on_progress)
        self._runner.partial.connect(self._on_partial)
        self._runner.started.connect(self._on_started)
        self._thread.started.connect(self._runner.setup)
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._thread.start()

    def submit(
        self,
        name: str,
        fn: Callable,
        *args,
        tag: str = "",
        on_done=None,
        on_error=None,
        on_progress=None,
        on_partial=None,
    ) -> Job:
        """Run ``fn(context, *args)`` on the engine thread; callbacks run on the GUI thread."""
        from cest_studio.tasks import Context

        job = Job(name, fn, args, tag, on_done, on_error, on_progress, on_partial, next(self._ids))
        runner = self._runner
        job.context = Context(
            progress=lambda d, t, i=job.id: runner.progress.emit(i, d, t),
            partial=lambda v, i=job.id: runner.partial.emit(i, v),
        )
        self._jobs[job.id] = job
        self._submit.emit(job)
        return job

    def cancel(self, tag: str | None = None) -> None:
        """Stop the running and queued jobs with this tag (all jobs when None)."""
        for job in list(self._jobs.values()):
            if tag is None or job.tag == tag:
                job.context.stop_event.set()

    def pending(self, tag: str | None = None) -> bool:
        return any(tag is None or j.tag == tag for j in self._jobs.values())

    def _on_started(self, job_id: int, name: str) -> None:
        self.busy_changed.emit(name)

    def _finish(self, job_id: int) -> Job | None:
        job = self._jobs.pop(job_id, None)
        if not self._jobs:
            self.busy_changed.emit("")
        return job

    def _on_done(self, job_id: int, result) -> None:
        job = self._finish(job_id)
        if job and job.on_done:
            job.on_done(result)

    def _on_error(self, job_id: int, message: str) -> None:
        job = self._finish(job_id)
        if job and message and job.on_error:
            job.on_error(message)

    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        job = self._jobs.get(job_id)
        if job and job.on_progress:
            job.on_progress(done, total)

    def _on_partial(self, job_id: int, value) -> None:
        job = self._jobs.get(job_id)
        if job and job.on_partial:
            job.on_partial(value)

    def shutdown(self, wait_ms: int = 5000) -> None:
        self.cancel()
        self._thread.quit()
        self._thread.wait(wait_ms)


# ----------------------------------------------------------------------------------- preview


class _PreviewRunner(QObject):
    ready = Signal(object)
    failed = Signal(str)

    def __init__(self, owner: PreviewWorker, size: int):
        super().__init__()
        self._owner = owner
        from cest_studio.tasks import PreviewSession

        self._session = PreviewSession(size)

    @Slot()
    def setup(self) -> None:
        lower_thread_priority(5)

    @Slot()
    def process(self) -> None:
        from cest_studio.tasks import user_message

        request = self._owner._take()
        if request is None:
            return
        face, second, state, requested_at = request
        try:
            frame = self._session.frame(face, second, state, requested_at)
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(user_message(exc))
            return
        self.ready.emit(frame)


class PreviewWorker(QObject):
    """Renders the latest edit state on its own thread; stale requests are dropped."""

    frame_ready = Signal(object)  # tasks.PreviewFrame
    failed = Signal(str)
    _kick = Signal()

    def __init__(self, size: int = 256, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._latest = None
        self._scheduled = False
        self.requests = self.dropped = 0
        self._thread = QThread()
        self._thread.setObjectName("cest-preview")
        self._runner = _PreviewRunner(self, size)
        self._runner.moveToThread(self._thread)
        self._kick.connect(self._runner.process)
        self._runner.ready.connect(self.frame_ready)
        self._runner.failed.connect(self.failed)
        self._thread.started.connect(self._runner.setup)
        self._thread.start()

    def request(self, face, second, state) -> None:
        """Ask for a frame of ``face`` edited by ``state``; replaces any request not yet started."""
        with self._lock:
            self.requests += 1
            if self._latest is not None:
                self.dropped += 1
            self._latest = (face, second, state, time.perf_counter())
            if self._scheduled:
                return
            self._scheduled = True
        self._kick.emit()

    def _take(self):
        with self._lock:
            request, self._latest, self._scheduled = self._latest, None, False
            return request

    def shutdown(self, wait_ms: int = 3000) -> None:
        self._thread.quit()
        self._thread.wait(wait_ms)


# ----------------------------------------------------------------------------------- preloader


PRELOAD = {  # what building the 3D view would otherwise import on the GUI thread
    "pyvistaqt": [
        "pyvistaqt",
        "vtkmodules.vtkInteractionWidgets",
        "vtkmodules.vtkViewsContext2D",
        "vtkmodules.vtkViewsCore",
        "vtkmodules.vtkRenderingOpenGL2",
    ],
}


class _Importer(QObject):
    done = Signal(str, str)  # module, error ("" when fine)

    @Slot(str)
    def load(self, module: str) -> None:
        import importlib

        try:
            for name in PRELOAD.get(module, [module]):
                importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001
            self.done.emit(module, f"{type(exc).__name__}: {exc}")
            return
        self.done.emit(module, "")


class Preloader(QObject):
    """Imports heavy modules on a background thread so the window appears at once."""

    loaded = Signal(str, str)  # module, error
    _load = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("cest-preload")
        self._importer = _Importer()
        self._importer.moveToThread(self._thread)
        self._load.connect(self._importer.load)
        self._importer.done.connect(self.loaded)
        self._thread.start()

    def load(self, module: str) -> None:
        self._load.emit(module)

    def shutdown(self, wait_ms: int = 5000) -> None:
        self._thread.quit()
        self._thread.wait(wait_ms)


def tune_interpreter() -> None:
    """Keep the GUI thread responsive beside the engine threads: it gets the GIL back within ~1 ms
    (Python's default is 5 ms), and torch's idle OpenMP workers sleep instead of spinning on the
    cores the GUI thread needs (must be set before torch loads)."""
    sys.setswitchinterval(0.001)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def freeze_heap() -> None:
    """Move every object alive now (the imported modules: torch, VTK, the engine) out of the cyclic
    garbage collector's reach. A full collection otherwise walks them all, on whichever thread
    happens to allocate, holding the GIL: measured 140-360 ms pauses of the GUI thread during a
    video reconstruction on this 2-core machine. Called after the big imports; cheap."""
    import gc

    gc.freeze()
