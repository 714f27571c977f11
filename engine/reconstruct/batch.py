"""Reconstruct many files: expand folders, one output folder per input, errors reported per file."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from engine.detect import NoFaceError
from engine.errors import CestError
from engine.io.formats import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_video

log = logging.getLogger("cest")


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; folders replaced by the images and videos inside them (sorted, not recursive)."""
    files = []
    for path in inputs:
        if path.is_dir():
            known = IMAGE_SUFFIXES | VIDEO_SUFFIXES
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in known)
        else:
            files.append(path)
    return files


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when taken; the result is added to ``taken``."""
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def output_folders(out: Path, files: list[Path]) -> tuple[list[Path], set[str]]:
    """OUT/<stem> for every input, unique across the whole batch, and the set of names taken
    (the extra faces of --all-faces pick theirs from it, so they never land in another input's)."""
    taken: set[str] = set()
    return [out / unique_name(path.stem, taken) for path in files], taken


def reconstruct_paths(
    inputs,
    out: Path,
    method="auto",
    weights=None,
    device="cpu",
    detector="auto",
    all_faces=False,
    meshes=False,
    formats=("obj", "ply", "glb"),
    detail=True,
    animation=False,
    preview=False,
) -> int:
    """Reconstruct every input into ``out``; returns the exit status (0 all good, 1 some failed)."""
    from engine.reconstruct.reconstructor import Reconstructor

    files = expand_inputs([Path(p) for p in inputs])
    if not files:
        raise CestError("no images or videos found in the inputs")
    reconstructor = Reconstructor(
        method=method, weights=weights, device=device, detector=detector, detail=detail
    )
    log.info(
        "method: %s%s",
        reconstructor.method,
        f" ({reconstructor.weights.name})" if reconstructor.weights else " (landmark fit, no weights)",
    )
    folders, taken = output_folders(out, files)
    with _Interrupts() as interrupts:
        video = {"meshes": meshes, "animation": animation, "preview": preview}
        failures = _run_all(reconstructor, files, folders, taken, interrupts, all_faces, video, formats)
    ok = len(files) - failures
    log.info("%d of %d inputs reconstructed into %s", ok, len(files), out)
    return 0 if failures == 0 else 1


class _Interrupts:
    """Notes a Ctrl-C even where the code it interrupts turns it into another error (a decoder
    reporting a failed read): the batch then stops instead of going on to the next file."""

    def __init__(self):
        self.seen = False
        self._previous = None

    def _handle(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def regular_file_problem(path: Path) -> str | None:
    """Only regular files are read: a pipe, socket or device would block or never end."""
    if path.exists() and not path.is_file() and not path.is_dir():
        return f"{path}: not a regular file (a pipe, socket or device); only regular files are read"
    return None


def _run_all(reconstructor, files, folders, taken, interrupts, all_faces, video: dict, formats) -> int:
    failures = 0
    # disable=None: a bar only on a terminal; piped, its carriage returns would garble the error lines
    bar = tqdm(list(zip(files, folders)), unit="file", disable=True if len(files) < 2 else None)
    for path, target in bar:
        bar.set_postfix_str(path.name[-30:])
        existed = target.exists()
        try:
            if problem := regular_file_problem(path):
                raise CestError(problem)
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
                raise CestError(f"{path}: an audio file, with no pictures to reconstruct a face from")
            if is_video(path):
                from engine.reconstruct.video import reconstruct_video

                reconstruct_video(reconstructor, path, target, **video)
            else:
                _reconstruct_image(reconstructor, path, target, all_faces, formats, taken)
        except (CestError, NoFaceError, OSError) as exc:  # OSError: the results could not be written
            if interrupts.seen:
                raise KeyboardInterrupt from exc
            failures += 1
            _remove_if_empty(target, existed)
            message = _one_line(exc)
            tqdm.write(
                f"error: {message if message.startswith(str(path)) else f'{path}: {message}'}",
                file=sys.stderr,
            )
        except Exception as exc:  # a bug, or an input nobody foresaw: say so and keep the batch going
            if interrupts.seen:
                raise KeyboardInterrupt from exc
            failures += 1
            _remove_if_empty(target, existed)
            log.debug("unexpected error on %s", path, exc_info=True)
            tqdm.write(
                f"error: {path}: unexpected {type(exc).__name__}: {_one_line(exc)} "
                "(please report it; -v shows the traceback)",
                file=sys.stderr,
            )
    return failures


def _remove_if_empty(folder: Path, existed: bool) -> None:
    """A failed input leaves no empty output folder behind (one that was there before stays)."""
    if not existed:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).replace("\r", " ").replace("\n", " ").strip()
    return text[:500] or type(exc).__name__


def _reconstruct_image(
    reconstructor, path: Path, target: Path, all_faces: bool, formats, taken: set[str]
) -> None:
    from engine.io.staging import staged_folder
    from engine.reconstruct.views import write_reconstruction

    recons = reconstructor.reconstruct(path, all_faces=all_faces)
    for i, recon in enumerate(recons if all_faces else [recons]):
        folder = target if i == 0 else target.with_name(unique_name(f"{target.name}_face{i + 1}", taken))
        with staged_folder(folder) as stage:  # the face's files appear all together or not at all
            write_reconstruction(reconstructor, recon, stage, formats)
        tqdm.write(f"{path} -> {folder}/ ({recon.method})")
