"""Expression transfer: ``cest reconstruct TARGET... --expressions-from SOURCE``.

Each target photo is reconstructed as usual and wears the source's expression:
- a source photo: the target's usual files (face.obj/.ply/.glb, maps, params.json) with the
  source's expression weights in place of its own;
- a source video: the target's usual files (its own expression) plus animation.glb and
  blendshapes.csv: the target's shape and albedo performing the source video's motion
  (engine/reconstruct/animation.py; the source's per-frame reconstruction is made in a temporary folder).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from engine.errors import CestError
from engine.io.formats import is_video
from engine.reconstruct.expressions import transfer

log = logging.getLogger("cest")


def source_motion(reconstructor, source: Path, scratch: Path) -> dict:
    """Reconstruct the source once: its params (a photo) or its frames.jsonl and video info (a video)."""
    if not is_video(source):
        return {"params": reconstructor.reconstruct(source).params}
    from engine.io.video import probe
    from engine.reconstruct.video import reconstruct_video

    reconstruct_video(reconstructor, source, scratch / "source")
    info = probe(source)
    size = (info.width, info.height) if info.rotation % 180 == 0 else (info.height, info.width)
    return {"folder": scratch / "source", "fps": info.fps, "size": size}


def write_target(reconstructor, target: Path, folder: Path, source: dict, formats) -> None:
    """One target's files, wearing the source's expression (see the module's docstring)."""
    from engine.io.staging import staged_folder
    from engine.reconstruct.animation import write_animation
    from engine.reconstruct.views import write_reconstruction

    recon = reconstructor.reconstruct(target)
    if "params" in source:
        recon.params = transfer(recon.params, source["params"])
    with staged_folder(folder) as stage:
        write_reconstruction(reconstructor, recon, stage, formats)
        if "folder" in source:
            write_animation(
                source["folder"],
                reconstructor.model,
                recon.params.identity,
                recon.params.albedo,
                source["fps"],
                source["size"],
                out_dir=stage,
            )


def transfer_paths(
    targets: list[Path], source: Path, out: Path, formats=("obj", "ply", "glb"), **reconstructor_options
) -> int:
    """Reconstruct every target photo into OUT/<stem> with the source's expressions; exit status."""
    from engine.reconstruct.batch import expand_inputs, output_folders
    from engine.reconstruct.reconstructor import Reconstructor

    files = expand_inputs([Path(p) for p in targets])
    videos = [f for f in files if is_video(f)]
    if videos:
        raise CestError(
            f"{videos[0]}: --expressions-from takes photos as targets (the faces that wear the "
            "expressions); the source may be a photo or a video"
        )
    if not files:
        raise CestError("no target photos found in the inputs")
    if not Path(source).is_file():
        raise CestError(f"{source}: no such file (the source of the expressions)")
    reconstructor = Reconstructor(**reconstructor_options)
    scratch = Path(
        tempfile.mkdtemp(prefix=".cest-transfer-", dir=out.parent if out.parent.is_dir() else None)
    )
    try:
        motion = source_motion(reconstructor, Path(source), scratch)
        folders, _ = output_folders(out, files)
        for path, folder in zip(files, folders):
            write_target(reconstructor, path, folder, motion, formats)
            log.info("%s -> %s/ (expressions of %s)", path, folder, Path(source).name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0
