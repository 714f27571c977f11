"""Does one shape from several photos of a person beat a shape from one photo? Leave-one-out on LFW.

    python scripts/eval_same_person.py [--data ../shared/data/lfw_people] [--people 30] [--methods cest,fit]

For every photo h of a person with at least 4 photos, the person's other photos O give:
- single: the identity of one photo j of O (averaged over every j);
- several: the mean identity of all of O (what ``--same-person`` uses).
Each identity then explains photo h: viewpoint and expression are fitted to h's 68 detected landmarks
under that fixed identity (engine.model.fit.fit_with_identity) and the RMS landmark error, over the
outer-eye-corner distance, is reported (lower: the shape is more the person's own). Also the RMS
distance (cm) of the neutral face of each identity to the one h alone gives (the within-person
spread). LFW people are not in the training data of the shipped weights (resources/weights/README.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine.camera import pixels_to_ndc
from engine.crop import image_to_crop
from engine.io.image import load_image
from engine.model.fit import fit_with_identity
from engine.reconstruct.reconstructor import CROP_SIZE, Reconstructor
from engine.reconstruct.shots import shape_distance


def _photos(data: Path, people: int, least: int = 4) -> dict[str, list[Path]]:
    chosen = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
        if len(photos) >= least:
            chosen[folder.name] = photos[:8]
        if len(chosen) >= people:
            break
    return chosen


def _estimate(reconstructors: dict, path: Path):
    """Detect once; every method's identity and the crop-NDC landmarks (None: no face)."""
    image = load_image(path)
    faces = next(iter(reconstructors.values())).detector.detect(image)
    if not faces:
        return None
    out = {}
    for name, reconstructor in reconstructors.items():
        recon = reconstructor.reconstruct_face(image, faces[0])
        out[name] = recon.params.identity
        landmarks = image_to_crop(faces[0].landmarks, recon.crop_box, CROP_SIZE)
    out["landmarks"] = pixels_to_ndc(torch.as_tensor(landmarks, dtype=torch.float32)[None], CROP_SIZE)
    return out


def _error(model, landmarks: torch.Tensor, identity: torch.Tensor) -> float:
    """RMS landmark error of the fixed-identity fit, over the outer-eye-corner distance."""
    iod = float((landmarks[0, 36] - landmarks[0, 45]).norm())
    return float(fit_with_identity(model, landmarks, identity).rms_error[0]) / iod


def evaluate(data: Path, people: int, methods: list[str]) -> dict:
    reconstructors = {m: Reconstructor(method=m) for m in methods}
    model = next(iter(reconstructors.values())).model
    started = time.perf_counter()
    estimates = {}
    for person, photos in _photos(data, people).items():
        found = [e for e in (_estimate(reconstructors, p) for p in photos) if e is not None]
        if len(found) >= 4:
            estimates[person] = found
    rows = {
        m: {"single": [], "several": [], "spread_single_cm": [], "spread_several_cm": []} for m in methods
    }
    for found in estimates.values():
        for h, held in enumerate(found):
            others = [e for i, e in enumerate(found) if i != h]
            for m in methods:
                mean = torch.cat([o[m] for o in others]).mean(0, keepdim=True)
                row = rows[m]
                row["single"].append(np.mean([_error(model, held["landmarks"], o[m]) for o in others]))
                row["several"].append(_error(model, held["landmarks"], mean))
                row["spread_single_cm"].append(
                    np.mean([shape_distance(model, o[m], held[m]) for o in others])
                )
                row["spread_several_cm"].append(shape_distance(model, mean, held[m]))
    summary = {
        "people": len(estimates),
        "photos": sum(len(f) for f in estimates.values()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for m, row in rows.items():
        single, several = np.array(row["single"]), np.array(row["several"])
        summary[m] = {
            "landmark_error_single_photo_pct": round(100 * single.mean(), 3),
            "landmark_error_several_photos_pct": round(100 * several.mean(), 3),
            "several_better_on_fraction": round(float((several < single).mean()), 3),
            "shape_to_held_out_single_cm": round(float(np.mean(row["spread_single_cm"])), 4),
            "shape_to_held_out_several_cm": round(float(np.mean(row["spread_several_cm"])), 4),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/lfw_people"
    )
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--methods", default="cest,fit")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(evaluate(args.data, args.people, args.methods.split(",")), indent=2))


if __name__ == "__main__":
    main()
