"""Re-anchor the face model's 68 landmark vertices to the default detector's convention.

The ICT model's landmark vertices (``idx_to_landmark_verts``) follow the ICT annotators' idea of
the iBUG points; our detector (engine.detect: MediaPipe Face Mesh mapped to iBUG 68) has its own,
and the two disagree systematically (jaw points high and inward, brows, nose). The landmark fit
and the training landmark loss compare the detector's points with the model's vertices, so the
model should carry the vertices the detector actually finds.

Method (deterministic, CPU, a few minutes):

1. Render synthetic faces of the *training* split (engine.training.data.synthetic; the benchmark uses the
   held-out split) with the ICT landmark vertices, so the faces look the same whatever is
   calibrated (the generator paints brows, lips and eyes at the landmark vertices); keep neutral
   ones turned at most ``--max-yaw`` degrees. Neutral, because on the synthetic open mouth the
   detector follows only about half the opening: calibrated on expressive faces, the inner
   lower lip would jump to upper-lip vertices (``--expressions`` does it anyway, guarded below).
2. Run the default detector on each (faces it misses, or finds more than half an inter-ocular
   distance from the truth, are dropped).
3. Project every mesh vertex of each face with its known identity, expression and camera, and
   for each landmark k and candidate vertex v take the mean squared distance (in centimetres of
   the face: pixels / the face's pixels per cm) between v's projection and detected point k.
4. Pick, per landmark, the candidate with the lowest mean: candidates are the mesh vertices within
   ``--radius`` cm of the ICT vertex that face forward and move like it under every blendshape
   (``--max-motion``: no crossing to the other lip or eyelid); mirror pairs of iBUG points
   (0<->16, 17<->26, 36<->45, ...) take mirror-twin vertices (jointly scored) and the centre-line
   points (8, 27-30, 33, 51, 57, 62, 66) take vertices on the midline.

The mesh is not changed (the converter still seeds its decimation with the ICT vertices), only
which of its vertices are the landmarks. The result depends on the synthetic generator, the
renderer and the detector: re-run it when one of them changes.

Writes the 68 ICT source-vertex indices to resources/facemodel/landmarks_calibrated.json (read by
scripts/convert_facemodel.py, so a rebuild reproduces the model) and updates
resources/facemodel/facemodel.npz in place: ``landmarks`` = calibrated, ``landmarks_ict`` = ICT.

Usage: python scripts/calibrate_landmarks.py [--faces 600] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.camera import ndc_to_pixels  # noqa: E402
from engine.detect import IBUG68_FLIP, create_detector  # noqa: E402
from engine.facemodel import FaceModel  # noqa: E402

MODEL_DIR = ROOT / "resources" / "facemodel"
JSON_NAME = "landmarks_calibrated.json"
MIDLINE = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)  # their own mirror partners
assert tuple(int(k) for k in np.flatnonzero(IBUG68_FLIP == np.arange(68))) == MIDLINE
REGIONS = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}
WRONG_FACE_IOD = 0.5  # as engine.evaluate: a detection this far off found something else


# ------------------------------------------------------------------------------ measuring


def load_arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def ict_landmarks(arrays: dict) -> np.ndarray:
    """The ICT landmark vertices (mesh indices), whether or not the file was calibrated already."""
    return np.asarray(arrays.get("landmarks_ict", arrays["landmarks"]), np.int64)


def collect(
    model: FaceModel,
    faces: int,
    seed: int,
    image_size: int,
    max_yaw: float,
    detector_name: str = "auto",
    threads: int = 1,
    expressions: bool = False,
    log=print,
) -> dict:
    """Render training-split synthetic faces, detect them, and project every vertex.

    Returns detections (N, 68, 2) and projections (N, V, 2) in pixels, px_per_cm (N,), pose (N, 3)
    degrees, the tried/kept counts and the detector's name. Item i of the split is tried in order
    until ``faces`` faces within the yaw limit were detected. Without ``expressions`` the faces are
    neutral (the generator's open jaw, drawn regardless, is skipped too).
    """
    from engine.training.data.synthetic import SyntheticConfig, SyntheticFaces

    config = SyntheticConfig(image_size=image_size, frames=1)
    if not expressions:
        config.expression_prob = 0.0
    data = SyntheticFaces(config, length=10 * faces, seed=seed, split="train", face_model=model)
    options = {"threads": threads} if detector_name in ("auto", "mediapipe-tflite") else {}
    detector = create_detector(detector_name, **options)
    det, proj, unit, pose = [], [], [], []
    tried = missed = skipped = 0
    started = time.perf_counter()
    for index in range(len(data)):
        if len(det) >= faces:
            break
        item = data[index]
        tried += 1
        params = item["params"]
        yaw = math.degrees(float(params.rotation[0, 1]))
        if abs(yaw) > max_yaw or (not expressions and float(params.expression.abs().max()) > 0):
            skipped += 1
            continue
        image = item["image"][0].permute(1, 2, 0).numpy()
        found = detector.detect(image)
        truth = item["landmarks_true"][0].numpy().astype(np.float64)
        iod = np.linalg.norm(truth[36] - truth[45])
        if not found or np.linalg.norm(found[0].landmarks - truth, axis=1).mean() > WRONG_FACE_IOD * iod:
            missed += 1
            continue
        with torch.no_grad():
            _, _, ndc = params.geometry(model)
        det.append(np.asarray(found[0].landmarks, np.float64))
        proj.append(ndc_to_pixels(ndc[0, :, :2].double(), image_size).numpy())
        unit.append(float(params.scale[0, 0]) * image_size / 2)
        pose.append(np.degrees(params.rotation[0].numpy()))
        if len(det) % 50 == 0:
            log(f"  {len(det)} faces detected ({tried} rendered, {time.perf_counter() - started:.0f} s)")
    return {
        "detections": np.stack(det),
        "projections": np.stack(proj),
        "px_per_cm": np.array(unit),
        "pose_deg": np.stack(pose),
        "tried": tried,
        "missed": missed,
        "skipped": skipped,
        "detector": getattr(detector, "name", type(detector).__name__),
    }


def subset(samples: dict, index) -> dict:
    per_face = ("detections", "projections", "px_per_cm", "pose_deg")
    return {k: (v[index] if k in per_face else v) for k, v in samples.items()}


def cost_matrix(samples: dict) -> np.ndarray:
    """(68, V): mean over faces of the squared distance (cm²) between vertex v's projection and
    detected point k."""
    unit = samples["px_per_cm"][:, None, None]
    p = samples["projections"] / unit  # (N, V, 2) cm
    d = samples["detections"] / unit  # (N, 68, 2) cm
    n = len(unit)
    pp = (p**2).sum(-1).mean(0)  # (V,)
    dd = (d**2).sum(-1).mean(0)  # (68,)
    pd = np.einsum("nkc,nvc->kv", d, p) / n
    return np.maximum(dd[:, None] - 2 * pd + pp[None], 0)


def vertex_normals(mean: np.ndarray, faces: np.ndarray) -> np.ndarray:
    normals = np.zeros_like(mean, dtype=np.float64)
    cross = np.cross(mean[faces[:, 1]] - mean[faces[:, 0]], mean[faces[:, 2]] - mean[faces[:, 0]])
    for i in range(3):
        np.add.at(normals, faces[:, i], cross)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def choose(
    cost: np.ndarray, arrays: dict, ict: np.ndarray, radius: float, min_facing: float, max_motion: float
) -> np.ndarray:
    """Per landmark, the candidate vertex with the lowest cost, mirror pairs and midline enforced.

    Candidates lie within ``radius`` cm of the ICT vertex, face forward (normal z >= min_facing, or
    as much as the ICT vertex does) and move like it: under every blendshape their displacement
    differs from the ICT vertex's by at most ``max_motion`` cm, so no point crosses to the other
    lip or eyelid (an inner lower-lip point must open with the jaw)."""
    mean = arrays["mean"].astype(np.float64)
    sym = arrays["symmetry"].astype(np.int64)
    motion = arrays["expression_basis"].astype(np.float64)  # (E, V, 3)
    facing = vertex_normals(mean, arrays["faces"].astype(np.int64))[:, 2]
    on_midline = sym == np.arange(len(sym))
    chosen = np.full(68, -1)

    def candidates(k: int) -> np.ndarray:
        near = np.linalg.norm(mean - mean[ict[k]], axis=1) <= radius
        # a side-on ICT vertex (the jaw ends, near the ears) lowers the bar to its own facing
        forward = facing >= min(min_facing, facing[ict[k]])
        alike = np.linalg.norm(motion - motion[:, ict[k] : ict[k] + 1], axis=-1).max(0) <= max_motion
        return near & forward & alike

    for k in range(68):
        if chosen[k] >= 0:
            continue
        twin = int(IBUG68_FLIP[k])
        if twin == k:
            score = np.where(candidates(k) & on_midline, cost[k], np.inf)
        else:  # v for k, its mirror twin sym[v] for the twin point, scored together
            score = np.where(candidates(k) & candidates(twin)[sym], cost[k] + cost[twin, sym], np.inf)
        v = int(np.argmin(score))
        if not np.isfinite(score[v]):
            raise RuntimeError(f"no candidate vertex for landmark {k}: widen --radius")
        chosen[k], chosen[twin] = v, int(sym[v])
    return chosen


# ------------------------------------------------------------------------------ reporting


def region_errors(samples: dict, landmarks: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean detector-to-vertex distance per region, % of each face's inter-ocular distance, measured
    between the outer eye corners (36, 45) of the ``reference`` vertices (the same for any set)."""
    proj = samples["projections"][:, landmarks]  # (N, 68, 2)
    corners = samples["projections"][:, reference[[36, 45]]]
    iod = np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1)[:, None]
    err = np.linalg.norm(proj - samples["detections"], axis=-1) / iod * 100  # (N, 68)
    out = {name: float(err[:, list(idx)].mean()) for name, idx in REGIONS.items()}
    out["all"] = float(err.mean())
    return out


def bias(samples: dict, landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) mean offset detection - vertex, cm of the face, in image axes (x right, y down)."""
    unit = samples["px_per_cm"][:, None, None]
    return ((samples["detections"] - samples["projections"][:, landmarks]) / unit).mean(0)


def format_regions(errors: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.1f}" for k, v in errors.items())


# ------------------------------------------------------------------------------ writing


def write_model(path: Path, arrays: dict, landmarks: np.ndarray, ict: np.ndarray) -> None:
    out = dict(arrays)
    out["landmarks"] = landmarks.astype(np.int32)
    out["landmarks_ict"] = ict.astype(np.int32)
    np.savez_compressed(path, **out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_DIR / "facemodel.npz")
    parser.add_argument("--json", type=Path, default=None, help=f"default: beside --model, {JSON_NAME}")
    parser.add_argument("--faces", type=int, default=600, help="detected synthetic faces to use")
    parser.add_argument("--seed", type=int, default=0, help="training-split seed")
    parser.add_argument("--image-size", type=int, default=128, help="synthetic image size (the benchmark's)")
    parser.add_argument("--max-yaw", type=float, default=25.0, help="degrees; more turned faces are skipped")
    parser.add_argument("--radius", type=float, default=2.5, help="cm around the ICT vertex to search")
    parser.add_argument("--min-facing", type=float, default=0.0, help="least normal z of a candidate")
    parser.add_argument(
        "--max-motion",
        type=float,
        default=1.0,
        help="cm a candidate's blendshape motion may differ from the ICT vertex's",
    )
    parser.add_argument(
        "--expressions",
        action="store_true",
        help="calibrate on expressive faces too (default: neutral faces; the detector "
        "under-follows the synthetic open mouth)",
    )
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, help="reuse / store the detections here (.npz)")
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    json_path = args.json or args.model.parent / JSON_NAME

    arrays = load_arrays(args.model)
    ict = ict_landmarks(arrays)
    render_model = FaceModel({**arrays, "landmarks": ict})  # the faces look the same every run

    if args.cache and args.cache.is_file():
        with np.load(args.cache, allow_pickle=False) as data:
            samples = {k: data[k] for k in data.files}
        samples["detector"] = str(samples["detector"])
        print(f"read {len(samples['px_per_cm'])} detected faces from {args.cache}")
    else:
        print(f"rendering training-split faces (seed {args.seed}, |yaw| <= {args.max_yaw} deg) and detecting")
        samples = collect(
            render_model,
            args.faces,
            args.seed,
            args.image_size,
            args.max_yaw,
            args.detector,
            args.threads,
            args.expressions,
        )
        if args.cache:
            np.savez_compressed(args.cache, **samples)
    n = len(samples["px_per_cm"])
    print(
        f"{n} faces used ({samples['tried']} rendered: {samples['skipped']} turned too far or not neutral, "
        f"{samples['missed']} missed by {samples['detector']})"
    )

    cost = cost_matrix(samples)
    pick = lambda c: choose(c, arrays, ict, args.radius, args.min_facing, args.max_motion)  # noqa: E731
    new = pick(cost)
    # stability: the choice from either half of the faces (even / odd) against the choice from all
    halves = [pick(cost_matrix(subset(samples, slice(i, None, 2)))) for i in (0, 1)]
    mean_shape = arrays["mean"].astype(np.float64)
    spread = [np.linalg.norm(mean_shape[h] - mean_shape[new], axis=1) for h in halves]
    print(
        f"from half the faces: {min(int((h == new).sum()) for h in halves)}+ of 68 same vertex, "
        f"largest shift {max(float(d.max()) for d in spread):.2f} cm"
    )
    before, after = region_errors(samples, ict, ict), region_errors(samples, new, ict)
    print(f"detector vs ICT vertices    (% IOD): {format_regions(before)}")
    print(f"detector vs chosen vertices (% IOD): {format_regions(after)}")
    moved = np.linalg.norm(mean_shape[new] - mean_shape[ict], axis=1)
    rest_bias = np.linalg.norm(bias(samples, new), axis=1)
    print("moved (cm, mean shape): " + " ".join(f"{k}:{m:.2f}" for k, m in enumerate(moved) if m > 0))
    print(f"largest remaining mean offset: point {int(rest_bias.argmax())}, {rest_bias.max():.2f} cm")

    source = arrays["source_index"].astype(np.int64)
    record = {
        "about": (
            "The face model's 68 landmark vertices re-anchored to the default detector's convention "
            "by scripts/calibrate_landmarks.py; indices of the ICT FaceKit's generic_neutral_mesh "
            "vertices, iBUG-68 order. scripts/convert_facemodel.py reads this file."
        ),
        "landmarks": [int(i) for i in source[new]],
        "landmarks_ict": [int(i) for i in source[ict]],
        "detector": samples["detector"],
        "faces": n,
        "split": "train",
        "seed": args.seed,
        "image_size": args.image_size,
        "max_yaw_deg": args.max_yaw,
        "expressions": args.expressions,
        "radius_cm": args.radius,
        "min_facing": args.min_facing,
        "max_motion_cm": args.max_motion,
        "half_sample_agreement": [int((h == new).sum()) for h in halves],
        "detector_error_percent_iod": {
            "ict": {k: round(v, 2) for k, v in before.items()},
            "calibrated": {k: round(v, 2) for k, v in after.items()},
        },
    }
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    write_model(args.model, arrays, new, ict)
    print(f"wrote {json_path} and {args.model} (landmarks: calibrated, landmarks_ict: ICT)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
