"""Output folders that appear whole: write into a hidden folder beside the target, move in at the end.

    with staged_folder(out / "face") as stage:
        ...write every file into stage...
    # on success the files are in out/face; on any error neither out/face nor the stage changed

A new target is the stage renamed (one atomic step: all files or none). An existing one (a re-run)
keeps its previous files until the new ones are complete; then each is replaced by a rename.
A process killed outright (SIGKILL, power cut) leaves its hidden stage ``.NAME.PID-XXXX.staging``;
the next run into that folder removes the stages of processes that are gone.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from engine.errors import WriteError
from engine.io.atomic import remove_leftovers, write_error
from engine.io.runlock import pid_alive

SUFFIX = ".staging"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _stage_pid(stage: Path, target: Path) -> int | None:
    rest = stage.name[len(f".{target.name}.") :]
    try:
        return int(rest.split("-", 1)[0])
    except ValueError:
        return None


def remove_stale_stages(target: str | Path) -> list[Path]:
    """Delete the hidden stages of ``target`` left by processes that no longer run; returns them."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    stale = []
    for stage in target.parent.glob(f".{target.name}.*{SUFFIX}"):
        pid = _stage_pid(stage, target)
        if stage.is_dir() and pid is not None and not pid_alive(pid):
            shutil.rmtree(stage, ignore_errors=True)
            stale.append(stage)
    return stale


def new_stage(target: Path) -> Path:
    """A new hidden empty folder beside ``target``, with the permissions mkdir would give it."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=SUFFIX, dir=target.parent)
        )
        os.chmod(stage, 0o777 & ~_UMASK)  # mkdtemp makes it 0o700
        return stage
    except OSError as err:
        raise write_error(err, target) from err


def target_error(err: OSError, stage: Path, target: Path) -> WriteError:
    """The error of a write into the stage, told about the target (the stage is an implementation detail)."""
    kept = f"the previous files in {target} are kept" if target.exists() else "nothing was written"
    text = str(err)
    if isinstance(err, WriteError) and str(stage) in text:  # "cannot write STAGE/x: reason (kept)"
        head = text.replace(str(stage), str(target)).rsplit(" (", 1)[0]
        return WriteError(err.errno or errno.EIO, f"{head} ({kept})")
    reason = os.strerror(err.errno) if err.errno else (text or type(err).__name__)
    if err.errno == errno.ENOSPC:
        reason = "the disk is full"
    return WriteError(err.errno or errno.EIO, f"cannot write {target}: {reason} ({kept})")


def commit(stage: Path, target: Path) -> Path:
    """Put the stage's files in place at ``target`` (see the module's docstring); returns target."""
    try:
        if not target.exists():
            os.rename(stage, target)
            return target
        for entry in sorted(stage.iterdir()):
            _replace(entry, target / entry.name)
            remove_leftovers(target / entry.name)  # temporaries a killed writer left in the old folder
        stage.rmdir()
    except OSError as err:
        raise write_error(err, target) from err
    return target


def _replace(source: Path, dest: Path) -> None:
    if source.is_dir() and dest.is_dir():
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
        os.rename(dest, old)
        os.rename(source, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(source, dest)


def discard(stage: Path) -> None:
    shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def staged_folder(target: str | Path):
    """Yield a hidden empty folder beside ``target``; committed on success, removed on any error
    (Ctrl-C included), so the target holds all of the new files or the old ones."""
    target = Path(target)
    remove_stale_stages(target)
    stage = new_stage(target)
    try:
        yield stage
    except OSError as err:
        discard(stage)
        raise target_error(err, stage, target) from err
    except BaseException:
        discard(stage)
        raise
    try:
        commit(stage, target)
    except BaseException:
        discard(stage)
        raise
