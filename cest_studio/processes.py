"""The app's child processes: training (``python -m engine.train``) and a video's reconstruction
(``python -m cest_studio.video_job``) run outside the window's process (QProcess), so a crash there
cannot take the window down and their work does not compete with the GUI thread for Python's
interpreter lock. Nothing here blocks the GUI thread: QProcess reports through the event loop.
"""

from __future__ import annotations

import os
import signal
import sys

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from cest_studio.widgets import timed


def python_command(module: str, args: list[str]) -> tuple[str, list[str]]:
    """(program, arguments) that run ``python -m module args`` with this interpreter. In the
    PyInstaller bundle ``sys.executable`` is the app itself, whose entry (packaging/entry.py)
    accepts the same ``-m MODULE`` for the modules it lists."""
    return sys.executable, ["-m", module, *args]


class ChildProcess(QObject):
    """A Python module run as a child process (QProcess): its output, its end, a graceful stop.

    Lines that start with ``@cest `` are JSON messages (see cest_studio.video_job); the rest is
    output for a log. Nothing here blocks the GUI thread: QProcess reports through the event loop.
    """

    output = Signal(str)
    message = Signal(dict)
    finished = Signal(int, str)  # exit code, how it ended ("done", "stopped", "crashed", "failed")
    started = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._process: QProcess | None = None
        self._stopping = False
        self._buffer = ""
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

    def running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    @timed
    def start(self, module: str, args: list[str], workdir: str | None = None) -> None:
        if self.running():
            raise RuntimeError("already running")
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        root = _project_root()
        if root:
            env.insert("PYTHONPATH", os.pathsep.join(p for p in (root, env.value("PYTHONPATH")) if p))
        process.setProcessEnvironment(env)
        if workdir:
            process.setWorkingDirectory(workdir)
        process.readyReadStandardOutput.connect(self._read)
        process.readyReadStandardError.connect(self._read_errors)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error)
        self._process, self._stopping, self._buffer = process, False, ""
        if hasattr(QProcess, "UnixProcessFlag") and hasattr(process, "setUnixProcessParameters"):
            # vfork: no copy of this (large) process's page tables in the GUI thread
            process.setUnixProcessParameters(QProcess.UnixProcessFlag.UseVFork)
        program, arguments = python_command(module, args)
        process.start(program, arguments)
        self.started.emit()

    @timed
    def stop(self, grace_ms: int = 8000) -> None:
        """Ask the child to stop (see :meth:`_ask_to_stop`); kill it after ``grace_ms``."""
        if not self.running():
            return
        self._stopping = True
        self._ask_to_stop()
        self._kill_timer.start(grace_ms)

    def _ask_to_stop(self) -> None:
        """SIGINT (the child ends its step and exits) where there are signals, else terminate."""
        pid = self._process.processId()
        if pid and os.name == "posix":
            os.kill(pid, signal.SIGINT)
        else:
            self._process.terminate()

    def _kill(self) -> None:
        if self.running():
            self._process.kill()

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Stop and wait (the window is closing): killed if it does not end in time."""
        if not self.running():
            return
        process = self._process
        self.stop(grace_ms=wait_ms)
        if not process.waitForFinished(wait_ms):
            process.kill()
            process.waitForFinished(1000)

    @timed
    def _read(self) -> None:
        if self._process is None:
            return
        data = bytes(self._process.readAllStandardOutput()).decode("utf-8", "replace")
        if not data:
            return
        from cest_studio.video_job import parse_message

        self._buffer += data
        *lines, self._buffer = self._buffer.split("\n")
        plain = []
        for line in lines:
            message = parse_message(line)
            if message is not None:
                self.message.emit(message)
            else:
                plain.append(line)
        if plain:
            self.output.emit("\n".join(plain) + "\n")

    @timed
    def _read_errors(self) -> None:
        """stderr (progress bars, logs, tracebacks) goes to the log view as it is."""
        if self._process is None:
            return
        data = bytes(self._process.readAllStandardError()).decode("utf-8", "replace")
        if data:
            self.output.emit(data)

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._kill_timer.stop()
            self._process = None
            self.finished.emit(-1, "failed")

    @timed
    def _finished(self, code: int, status) -> None:
        self._read()
        self._read_errors()
        if self._buffer:
            self._buffer += "\n"
            self._read()
        self._kill_timer.stop()
        crashed = status == QProcess.ExitStatus.CrashExit
        if self._stopping:
            how = "stopped"
        elif crashed:
            how = "crashed"
        else:
            how = "done" if code == 0 else "failed"
        self._process = None
        self.finished.emit(code, how)


class TrainingProcess(ChildProcess):
    """``python -m engine.train ...``: SIGINT stops it after its step, keeping the last checkpoint."""


class VideoProcess(ChildProcess):
    """``python -m cest_studio.video_job ...``: a ``stop`` line on its stdin ends it after a frame."""

    def _ask_to_stop(self) -> None:
        self._process.write(b"stop\n")


def _project_root() -> str | None:
    """The folder holding the ``engine`` package, for the child's PYTHONPATH."""
    import importlib.util

    spec = importlib.util.find_spec("engine")
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(os.path.dirname(spec.origin))
