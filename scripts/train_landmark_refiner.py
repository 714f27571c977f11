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
import zlib
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
from engine.detect.trees import TreeSettings, fit_tree_cascade
from engine.evaluation.landmarks300w import match_face
from engine.io.annotations import find_annotated_images
from engine.io.image import load_image
from engine.resources import resources_root

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "landmarks300w"
LAMBDA = 5.0  # ridge strength of every stage (relative to the mean feature energy)
RANK = 32  # output directions each stage's regression keeps (of 136)
JITTERED_COPIES = 1  # extra training starts per face: moved by a small random similarity, relit
TREE_COPIES = 8  # extra starts per face for the trees (another face's error pattern, relit)


def collect(split: str, detector: MediaPipeDetector) -> dict[str, list]:
    """Every annotated face of a split, as is and mirrored: image, Face Mesh, annotation."""
    out: dict[str, list] = {"image": [], "mesh": [], "truth": [], "id": []}
    for number, ann in enumerate(find_annotated_images(DATA / split)):
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
                out["id"].append(f"{split}/{number}")
    return out


def load_pseudo(path: Path) -> dict[str, list]:
    """Faces labelled by a teacher (scripts/pseudo_label_faces.py), in collect()'s layout."""
    with np.load(path) as z:
        return {"image": list(z["image"]), "mesh": list(z["mesh"].astype(np.float64)),
                "truth": list(z["truth"].astype(np.float64)), "id": [str(i) for i in z["id"]]}  # fmt: skip


def joined(*parts: dict[str, list]) -> dict[str, list]:
    return {k: sum((p[k] for p in parts), []) for k in parts[0]}


def nme(points: np.ndarray, truths: np.ndarray) -> np.ndarray:
    iod = np.linalg.norm(truths[:, 36] - truths[:, 45], axis=1)
    return np.linalg.norm(points - truths, axis=2).mean(1) / iod


def jitter(
    points: np.ndarray, truth: np.ndarray, rng: np.random.Generator, turn=0.05, scale=0.04, shift=0.05
) -> np.ndarray:
    """The points moved by a random similarity: turn (rad), scale and shift (x the eye distance)
    drawn from normals of these spreads."""
    centre, iod = points.mean(0), np.linalg.norm(truth[36] - truth[45])
    a, s = rng.normal(0, turn), 1 + rng.normal(0, scale)
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points - centre) @ rot.T + centre + rng.normal(0, shift * iod, 2)


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


def held_out_starts(
    data: dict[str, list], canvas: int, windows: list[int], folds: int, **hyper
) -> np.ndarray:
    """Each face's points from a linear map and cascade fitted without it (nor its mirror image):
    starts for the trees with the errors the cascade makes on new faces, not its training ones."""
    ids = np.array([zlib.crc32(i.encode()) % folds for i in data["id"]])
    starts = np.zeros((len(ids), 68, 2))
    for fold in range(folds):
        inside, outside = np.flatnonzero(ids != fold), np.flatnonzero(ids == fold)
        refiner = fit(subset(data, inside), canvas, windows, log=lambda *_: None, **hyper)
        for i in outside:
            starts[i] = refiner(data["image"][i], data["mesh"][i])
    return starts


def subset(data: dict[str, list], rows: np.ndarray) -> dict[str, list]:
    return {k: [v[i] for i in rows] for k, v in data.items()}


def tree_starts(starts: np.ndarray, truths: np.ndarray, copies: int, rng: np.random.Generator):
    """(faces, starts) for the trees: each face's held-out start, plus `copies` more whose error is
    another face's (scaled to this face's eye distance, by 0.8-1.3) moved by a small similarity."""
    n = len(starts)
    iod = np.linalg.norm(truths[:, 36] - truths[:, 45], axis=1)[:, None, None]
    faces, points = [np.arange(n)], [starts]
    for _ in range(copies):
        other = rng.integers(0, n, n)
        moved = truths + (starts - truths)[other] / iod[other] * iod * rng.uniform(0.8, 1.3, (n, 1, 1))
        points.append(np.array([jitter(p, t, rng, 0.03, 0.02, 0.02) for p, t in zip(moved, truths)]))
        faces.append(np.arange(n))
    return np.concatenate(faces), np.concatenate(points)


def fit_with_trees(
    data,
    canvas,
    windows,
    settings: TreeSettings,
    folds: int = 5,
    tree_copies: int = 8,
    seed=0,
    log=print,
    **hyper,
):
    """The linear map and cascade on all faces, then trees fitted on held-out cascade starts."""
    rng = np.random.default_rng(seed)
    refiner = fit(data, canvas, windows, seed=seed, log=log, **hyper)
    log(f"  cascade starts of each face held out of {folds} folds")
    truths = np.array(data["truth"])
    faces, starts = tree_starts(
        held_out_starts(data, canvas, windows, folds, **hyper), truths, tree_copies, rng
    )
    mean = mean_shape(truths, settings.side)
    refiner.trees = fit_tree_cascade(
        data["image"], faces, starts, truths[faces], mean, settings, rng, relit, log
    )
    return refiner


def measure(refiner: LandmarkRefiner, data: dict[str, list]) -> dict[str, float]:
    truths = np.array(data["truth"])
    table = np.array([mesh_to_ibug68(m) for m in data["mesh"]])
    linear = np.array([refiner.initial(m) for m in data["mesh"]])
    trees, refiner.trees = refiner.trees, None
    cascade, ms = _timed_points(refiner, data)
    refiner.trees = trees
    figures = {
        "index table": nme(table, truths).mean() * 100,
        "linear map": nme(linear, truths).mean() * 100,
        "linear + cascade": nme(cascade, truths).mean() * 100,
    }
    if trees is not None:
        full, ms = _timed_points(refiner, data)
        figures["+ trees"] = nme(full, truths).mean() * 100
    return figures | {"ms per face": ms}


def _timed_points(refiner: LandmarkRefiner, data: dict[str, list]) -> tuple[np.ndarray, float]:
    """The refiner's points for every face, and its time per face (ms)."""
    t0 = time.perf_counter()
    points = np.array([refiner(im, m) for im, m in zip(data["image"], data["mesh"])])
    return points, (time.perf_counter() - t0) / len(points) * 1000


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
    parser.add_argument(
        "--with-trees", action="store_true", help="regression trees after the cascade (measured, not shipped)"
    )
    parser.add_argument("--tree-stages", type=int, default=TreeSettings.stages)
    parser.add_argument("--trees", type=int, default=TreeSettings.trees, help="trees per stage")
    parser.add_argument("--tree-copies", type=int, default=TREE_COPIES, help="extra tree starts per face")
    parser.add_argument(
        "--pseudo",
        type=Path,
        help="teacher-labelled faces added to every fit (scripts/pseudo_label_faces.py)",
    )
    parser.add_argument("--helen-to-afw", action="store_true", help="only the HELEN -> AFW figure")
    parser.add_argument("--out", type=Path, default=resources_root() / "detect" / "landmark_refiner.npz")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    detector = MediaPipeDetector(refiner=False, threads=1)
    data = {split: collect(split, detector) for split in ("helen_train", "afw")}
    hyper = {"copies": args.copies, "lam": args.lam, "rank": args.rank}
    settings = TreeSettings(stages=args.tree_stages, trees=args.trees)
    pseudo = load_pseudo(args.pseudo) if args.pseudo else None

    def fitted(faces: dict[str, list]) -> LandmarkRefiner:
        faces = joined(faces, pseudo) if pseudo else faces
        if not args.with_trees:
            return fit(faces, args.canvas, windows, **hyper)
        return fit_with_trees(faces, args.canvas, windows, settings, tree_copies=args.tree_copies, **hyper)

    pairs = (
        (("helen_train", "afw"),) if args.helen_to_afw else (("helen_train", "afw"), ("afw", "helen_train"))
    )
    for train, test in () if args.no_validate else pairs:
        extra = f" + {len(pseudo['mesh'])} teacher-labelled" if pseudo else ""
        print(f"fit on {train} ({len(data[train]['mesh'])} faces incl. mirrored{extra}), measure on {test}:")
        figures = measure(fitted(data[train]), data[test])
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()), flush=True)
    if args.validate_only:
        return
    splits = ("helen_train", "afw") if args.fit_on == "both" else (args.fit_on,)
    both = joined(*(data[s] for s in splits))
    print(f"fit on {args.fit_on} ({len(both['mesh'])} faces incl. mirrored) -> {args.out}")
    fitted(both).save(args.out)


if __name__ == "__main__":
    main()
