"""Reconstruct many files: expand folders, one output folder per input, errors reported per file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

from engine.detect import NoFaceError
from engine.errors import CestError
from engine.imageio import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_video

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


def output_folder(out: Path, path: Path, taken: set[str]) -> Path:
    """OUT/<stem>, with a numeric suffix when two inputs share a stem."""
    name, n = path.stem, 2
    while name in taken:
        name, n = f"{path.stem}_{n}", n + 1
    taken.add(name)
    return out / name


def reconstruct_paths(inputs, out: Path, method="auto", weights=None, device="cpu", detector="auto",
                      all_faces=False, meshes=False, formats=("obj", "ply", "glb"), detail=True) -> int:
    """Reconstruct every input into ``out``; returns the exit status (0 all good, 1 some failed)."""
    from engine.infer import Reconstructor

    files = expand_inputs([Path(p) for p in inputs])
    if not files:
        raise CestError("no images or videos found in the inputs")
    reconstructor = Reconstructor(method=method, weights=weights, device=device, detector=detector,
                                  detail=detail)
    log.info("method: %s%s", reconstructor.method,
             f" ({reconstructor.weights.name})" if reconstructor.weights else " (landmark fit, no weights)")
    failures, taken = 0, set()
    # disable=None: a bar only on a terminal; piped, its carriage returns would garble the error lines
    bar = tqdm(files, unit="file", disable=True if len(files) < 2 else None)
    for path in bar:
        bar.set_postfix_str(path.name[-30:])
        target = output_folder(out, path, taken)
        existed = target.exists()
        try:
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
                raise CestError(f"{path}: an audio file, with no pictures to reconstruct a face from")
            if is_video(path):
                from engine.video import reconstruct_video

                reconstruct_video(reconstructor, path, target, meshes=meshes)
            else:
                _reconstruct_image(reconstructor, path, target, all_faces, formats)
        except (CestError, NoFaceError, OSError) as exc:  # OSError: the results could not be written
            failures += 1
            _remove_if_empty(target, existed)
            message = _one_line(exc)
            tqdm.write(f"error: {message if message.startswith(str(path)) else f'{path}: {message}'}",
                       file=sys.stderr)
        except Exception as exc:  # a bug, or an input nobody foresaw: say so and keep the batch going
            failures += 1
            _remove_if_empty(target, existed)
            log.debug("unexpected error on %s", path, exc_info=True)
            tqdm.write(f"error: {path}: unexpected {type(exc).__name__}: {_one_line(exc)} "
                       "(please report it; -v shows the traceback)", file=sys.stderr)
    ok = len(files) - failures
    log.info("%d of %d inputs reconstructed into %s", ok, len(files), out)
    return 0 if failures == 0 else 1


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


def _reconstruct_image(reconstructor, path: Path, target: Path, all_faces: bool, formats) -> None:
    from engine.outputs import write_reconstruction

    recons = reconstructor.reconstruct(path, all_faces=all_faces)
    for i, recon in enumerate(recons if all_faces else [recons]):
        folder = target if i == 0 else target.with_name(f"{target.name}_face{i + 1}")
        write_reconstruction(reconstructor, recon, folder, formats)
        tqdm.write(f"{path} -> {folder}/ ({recon.method})")
