"""Several photos of one person: one shape and one albedo from all of them (``--same-person``).

The consistency CEST trains for, as a feature: the identity is the mean of the photos' identities
and the albedo their visibility-weighted mean (each texel from the photos that saw it, as the video
tracks do); each photo keeps its own viewpoint, expression and light. With the landmark fit, each
photo's viewpoint and expression are re-fitted to its landmarks under the shared shape (its own fit
had traded shape against expression); the CEST networks' own estimates are kept as they are.

Writes OUT/person/ (the shared neutral face: face.obj/.ply/.glb, person.json) and OUT/<photo>/ for
each photo (the usual files of one reconstruction, with the shared shape and albedo).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from engine.camera import pixels_to_ndc
from engine.crop import image_to_crop
from engine.errors import CestError
from engine.model.fit import fit_with_identity
from engine.reconstruct.reconstructor import CROP_SIZE, Reconstruction, Reconstructor

log = logging.getLogger("cest")


def consensus(recons: list[Reconstruction]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, n_identity) mean identity and (1, 3, T, T) visibility-weighted mean albedo."""
    identity = torch.cat([r.params.identity for r in recons]).mean(0, keepdim=True)
    albedo_sum, weight_sum = 0.0, 0.0
    for r in recons:
        visibility = r.extras.get("visibility")
        weight = (visibility if visibility is not None else torch.ones_like(r.params.albedo[:, :1])) + 1e-3
        albedo_sum = albedo_sum + r.params.albedo * weight
        weight_sum = weight_sum + weight
    return identity, albedo_sum / weight_sum


def refit(reconstructor: Reconstructor, recon: Reconstruction, identity: torch.Tensor):
    """The photo's viewpoint and expression fitted to its landmarks under ``identity``."""
    landmarks = image_to_crop(recon.face.landmarks, recon.crop_box, CROP_SIZE)
    ndc = pixels_to_ndc(torch.as_tensor(landmarks, dtype=torch.float32)[None], CROP_SIZE)
    fit = fit_with_identity(
        reconstructor.model, ndc.to(reconstructor.device), identity.to(reconstructor.device)
    )
    return recon.params.replace(
        rotation=fit.rotation.cpu(),
        translation=fit.translation.cpu(),
        scale=fit.scale.cpu(),
        expression=fit.expression.cpu(),
    )


def reconstruct_same_person(reconstructor: Reconstructor, photos: list[Path]):
    """Reconstructions of every photo sharing one shape and albedo; returns (recons, identity, albedo)."""
    if len(photos) < 2:
        raise CestError("--same-person needs at least two photos of the person")
    recons = [reconstructor.reconstruct(photo) for photo in photos]
    identity, albedo = consensus(recons)
    for recon in recons:
        if reconstructor.method == "fit":
            recon.params = refit(reconstructor, recon, identity)
        recon.params = recon.params.replace(identity=identity.clone(), albedo=albedo.clone())
    return recons, identity, albedo


def same_person_paths(
    photos: list[Path], out: Path, formats=("obj", "ply", "glb"), **reconstructor_options
) -> int:
    """``cest reconstruct --same-person PHOTOS... -o OUT``; returns the exit status."""
    from engine.io import mesh as export
    from engine.io.formats import is_video
    from engine.io.staging import staged_folder
    from engine.reconstruct.batch import expand_inputs, output_folders
    from engine.reconstruct.views import write_reconstruction

    files = expand_inputs([Path(p) for p in photos])
    if any(is_video(f) for f in files):
        raise CestError("--same-person takes photos (a video is one person already: reconstruct it as it is)")
    reconstructor = Reconstructor(**reconstructor_options)
    recons, identity, _ = reconstruct_same_person(reconstructor, files)
    folders, _ = output_folders(out, [Path("person"), *files])
    neutral = recons[0].params.replace(expression=torch.zeros_like(recons[0].params.expression))
    with staged_folder(folders[0]) as stage:
        for fmt in formats:
            export.write_mesh(reconstructor.mesh(neutral), stage / f"face.{fmt}", fmt)
        export.write_json(
            {
                "photos": [str(f) for f in files],
                "method": reconstructor.method,
                "identity": identity[0].tolist(),
            },
            stage / "person.json",
        )
    for recon, folder in zip(recons, folders[1:]):
        with staged_folder(folder) as stage:
            write_reconstruction(reconstructor, recon, stage, formats)
    log.info(
        "%d photos of one person -> %s/ (shared shape and albedo in %s/)", len(files), out, folders[0].name
    )
    return 0
