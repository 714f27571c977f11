"""Atomic file writes: a temporary file beside the target, fsync, then rename over it.

A crash, a kill or a full disk mid-write leaves either the old file or the new one, never half.
A write that fails raises ``WriteError`` (an OSError with the original errno) saying which file and
that the previous one is kept; the temporary file is removed.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from engine.errors import WriteError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _mode_for(path: Path) -> int:
    """The permissions the file would get from open(): the old file's, else 0o666 less the umask
    (mkstemp makes 0o600 files, which other users and some viewers could not read)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def write_error(err: OSError, path: Path) -> WriteError:
    """A WriteError saying what went wrong writing ``path``, keeping err's errno."""
    if isinstance(err, WriteError):
        return err
    reason = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
    if err.errno == errno.ENOSPC:
        reason = "the disk is full"
    kept = "the previous file is kept" if path.exists() else "nothing was written"
    return WriteError(err.errno or errno.EIO, f"cannot write {path}: {reason} ({kept})")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp"):
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    ``suffix`` ends the temporary name (writers that pick the format from it want ``.mp4``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise write_error(err, path) from err
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise write_error(err, path) from err
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def remove_leftovers(path: str | Path) -> list[Path]:
    """Delete the temporaries a killed writer of ``path`` left beside it (``.NAME.*``); returns them.

    Only a process killed outright (SIGKILL, power loss) leaves one: every other failure cleans up.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [p for p in path.parent.glob(f".{path.name}.*") if p.is_file()]
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return stale
