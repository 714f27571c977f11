"""Fit the 468 -> 68 landmark refiner (engine/detect/refine.py) on the 300-W annotations.

    python scripts/train_landmark_refiner.py                 # cross-split figures, then fit on all, save
    python scripts/train_landmark_refiner.py --validate-only # figures only

Data: ../shared/data/landmarks300w/{helen_train,afw} (research-only annotations; never shipped,
only the fitted regressors are). Each photo is used as is and mirrored. Figures: trained on one
split, measured on the other (HELEN -> AFW and AFW -> HELEN), NME by the outer-eye-corner distance.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from engine.detect import MediaPipeDetector, as_rgb, flip_landmarks, mesh_to_ibug68
from engine.detect.refine import (
    Canvas,
    LandmarkRefiner,
    fit_linear,
    fit_stage,
    mean_shape,
    predicted_steps,
    stage_features,
)
from engine.evaluation.landmarks300w import match_face
from engine.io.annotations import find_annotated_images
from engine.io.image import load_image
from engine.resources import resources_root

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "landmarks300w"
LAMBDA = 5.0  # ridge strength of every stage (relative to the mean feature energy)
RANK = 32  # output directions each stage's regression keeps (of 136)
JITTERED_COPIES = 1  # extra training starts per face: moved by a small random similarity, relit


def collect(split: str, detector: MediaPipeDetector) -> dict[str, list]:
    """Every annotated face of a split, as is and mirrored: image, Face Mesh, annotation."""
    out: dict[str, list] = {"image": [], "mesh": [], "truth": []}
    for ann in find_annotated_images(DATA / split):
        rgb = as_rgb(load_image(ann.image))
        for mirrored in (False, True):
            image = np.ascontiguousarray(rgb[:, ::-1]) if mirrored else rgb
            truth = np.asarray(ann.points, np.float64)
            truth = flip_landmarks(truth, image.shape[1]) if mirrored else truth
            face = match_face(detector.detect(image), truth)
            if face is not None and face.mesh is not None:
                out["image"].append(image)
                out["mesh"].append(face.mesh.astype(np.float64))
                out["truth"].append(truth)
    return out


def nme(points: np.ndarray, truths: np.ndarray) -> np.ndarray:
    iod = np.linalg.norm(truths[:, 36] - truths[:, 45], axis=1)
    return np.linalg.norm(points - truths, axis=2).mean(1) / iod


def jitter(points: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    centre, iod = points.mean(0), np.linalg.norm(truth[36] - truth[45])
    a, s = rng.normal(0, 0.05), 1 + rng.normal(0, 0.04)
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points - centre) @ rot.T + centre + rng.normal(0, 0.05 * iod, 2)


def relit(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo with a random gamma, contrast and brightness, a third of the time blurred."""
    f = (image.astype(np.float32) / 255.0) ** rng.uniform(0.7, 1.4)
    out = (f * 255.0 - 128.0) * rng.uniform(0.6, 1.3) + 128.0 + rng.uniform(-30, 30)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def fit(
    data: dict[str, list],
    canvas: int,
    windows: list[int],
    seed: int = 0,
    log=print,
    copies: int = JITTERED_COPIES,
    lam: float = LAMBDA,
    rank: int = RANK,
) -> LandmarkRefiner:
    rng = np.random.default_rng(seed)
    meshes, truths = np.array(data["mesh"]), np.array(data["truth"])
    refiner = LandmarkRefiner(fit_linear(meshes, truths), mean_shape(truths, canvas), [])
    starts = np.array([refiner.initial(m) for m in meshes])
    faces = np.tile(np.arange(len(meshes)), 1 + copies)
    points = np.concatenate(
        [starts] + [np.array([jitter(p, t, rng) for p, t in zip(starts, truths)]) for _ in range(copies)]
    )
    canvases = []  # each training start's canvas, fixed for the cascade as at run time
    for j, (face, p) in enumerate(zip(faces, points)):
        image = data["image"][face]
        canvases.append(Canvas.of(image if j < len(meshes) else relit(image, rng), p, refiner.mean))
    local = np.array([c.to_local(p) for c, p in zip(canvases, points)])
    targets = np.array([c.to_local(truths[f]) for c, f in zip(canvases, faces)])
    for window in windows:
        t0 = time.perf_counter()
        x = np.array([stage_features(c.integral, p, window) for c, p in zip(canvases, local)])
        stage = fit_stage(x, (targets - local).reshape(len(x), -1), window, lam, rank)
        refiner.stages.append(stage)
        local = local + predicted_steps(stage, x).reshape(local.shape)
        back = np.array([c.to_image(p) for c, p in zip(canvases, local)])
        log(
            f"  stage {window}px: train NME {nme(back, truths[faces]).mean() * 100:.2f}% "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    return refiner


def measure(refiner: LandmarkRefiner, data: dict[str, list]) -> dict[str, float]:
    truths = np.array(data["truth"])
    table = np.array([mesh_to_ibug68(m) for m in data["mesh"]])
    linear = np.array([refiner.initial(m) for m in data["mesh"]])
    t0 = time.perf_counter()
    full = np.array([refiner(im, m) for im, m in zip(data["image"], data["mesh"])])
    ms = (time.perf_counter() - t0) / len(full) * 1000
    return {
        "index table": nme(table, truths).mean() * 100,
        "linear map": nme(linear, truths).mean() * 100,
        "linear + cascade": nme(full, truths).mean() * 100,
        "ms per face": ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validate-only", action="store_true")
    parser.add_argument(
        "--fit-on",
        choices=("both", "helen_train", "afw"),
        default="both",
        help="the split(s) the saved refiner is fitted on (one split: for held-out figures)",
    )
    parser.add_argument("--no-validate", action="store_true", help="skip the cross-split figures")
    parser.add_argument("--canvas", type=int, default=144, help="face canvas side (px)")
    parser.add_argument(
        "--windows", default="32,24,16", help="side of each stage's cell grid (px of the canvas)"
    )
    parser.add_argument("--copies", type=int, default=JITTERED_COPIES, help="jittered, relit starts per face")
    parser.add_argument("--lam", type=float, default=LAMBDA, help="ridge strength of every stage")
    parser.add_argument("--rank", type=int, default=RANK, help="output directions each stage keeps")
    parser.add_argument("--helen-to-afw", action="store_true", help="only the HELEN -> AFW figure")
    parser.add_argument("--out", type=Path, default=resources_root() / "detect" / "landmark_refiner.npz")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    detector = MediaPipeDetector(refiner=False, threads=1)
    data = {split: collect(split, detector) for split in ("helen_train", "afw")}
    hyper = {"copies": args.copies, "lam": args.lam, "rank": args.rank}
    pairs = (
        (("helen_train", "afw"),) if args.helen_to_afw else (("helen_train", "afw"), ("afw", "helen_train"))
    )
    for train, test in () if args.no_validate else pairs:
        print(f"fit on {train} ({len(data[train]['mesh'])} faces incl. mirrored), measure on {test}:")
        figures = measure(fit(data[train], args.canvas, windows, **hyper), data[test])
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    if args.validate_only:
        return
    splits = ("helen_train", "afw") if args.fit_on == "both" else (args.fit_on,)
    both = {k: sum((data[s][k] for s in splits), []) for k in data["afw"]}
    print(f"fit on {args.fit_on} ({len(both['mesh'])} faces incl. mirrored) -> {args.out}")
    fit(both, args.canvas, windows, **hyper).save(args.out)


if __name__ == "__main__":
    main()
