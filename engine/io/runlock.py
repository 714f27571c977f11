"""One training run per run folder: the rule for reusing a folder, and a lock while a run is live.

A folder that already holds a run (a checkpoint or weights) is refused unless the caller resumes
it or asks to overwrite it. While a run is live the folder holds ``.run.lock`` naming the holder
(pid, host, start time); a second run is refused with that name. A lock whose process is gone
(killed, power cut) is stale and taken over. The CLI (engine.train) and the app's Train tab both
use these functions, so they follow the same rule.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from engine.errors import CestError

LOCK = ".run.lock"
RUN_FILES = ("checkpoint.pt", "weights.safetensors")  # a folder holding either holds a run
RUN_OUTPUTS = (*RUN_FILES, "status.json", "config.yaml", "tb", "samples")  # what --overwrite clears


class RunFolderError(CestError, RuntimeError):
    """The run folder cannot be used as asked (it holds a run, or another run is live in it)."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    except OSError:
        return False
    return True


def holds_run(folder: str | Path) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in RUN_FILES)


def folder_problem(folder: str | Path, resume: bool, overwrite: bool = False) -> str | None:
    """Why a run may not start in ``folder`` ('' -> None when it may)."""
    folder = Path(folder)
    holder = lock_holder(folder)
    if holder is not None:
        return f"{folder} is in use by another training run ({describe(holder)}); wait for it or stop it"
    if resume and not (folder / RUN_FILES[0]).exists():
        return f"nothing to resume: no {RUN_FILES[0]} in {folder}"
    if not resume and not overwrite and holds_run(folder):
        return (
            f"{folder} already holds a training run: continue it (--resume; Resume in the app), "
            f"replace it (--overwrite) or choose another run folder"
        )
    return None


def check_folder(folder: str | Path, resume: bool, overwrite: bool = False) -> None:
    problem = folder_problem(folder, resume, overwrite)
    if problem:
        raise RunFolderError(problem)


def clear_run(folder: str | Path) -> None:
    """Remove a previous run's outputs (for --overwrite); other files in the folder stay."""
    for name in RUN_OUTPUTS:
        path = Path(folder) / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def describe(holder: dict) -> str:
    started = holder.get("started")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        if isinstance(started, (int, float))
        else "?"
    )
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {when}"


def _read_lock(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written, or torn: treat as held by an unknown process
    return holder if isinstance(holder, dict) else {}


def _stale(holder: dict, path: Path) -> bool:
    """A lock of a process on this host that is gone (or an unreadable one older than a minute:
    its writer was killed between creating and filling it)."""
    if not holder:
        try:
            return time.time() - path.stat().st_mtime > 60
        except OSError:
            return True
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid)


def _mine(holder: dict) -> bool:
    return holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()


def lock_holder(folder: str | Path) -> dict | None:
    """Who else holds the folder's lock (None when free, stale or held by this process)."""
    path = Path(folder) / LOCK
    holder = _read_lock(path)
    if holder is None or _stale(holder, path) or _mine(holder):
        return None
    return holder


class RunLock:
    """``with RunLock(folder):`` holds the folder's lock for this process, or raises RunFolderError."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _read_lock(self.path)
                if holder is not None and _stale(holder, self.path):
                    self.path.unlink(missing_ok=True)  # the holder died: take the folder over
                    continue
                if holder is None:
                    continue  # released meanwhile
                if _mine(holder):
                    return  # this process holds it already (train() around Trainer.run)
                raise RunFolderError(
                    f"{self.path.parent} is in use by another training run "
                    f"({describe(holder)}); wait for it or stop it"
                ) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            self.held = True
            return
        raise RunFolderError(f"cannot lock {self.path.parent}: its lock keeps changing")

    def release(self) -> None:
        if self.held:
            self.held = False
            holder = _read_lock(self.path)
            if holder and _mine(holder):
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
