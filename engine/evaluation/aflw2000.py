"""AFLW2000-3D: the two public protocols, on the detector's points, the fit and the CEST networks.

- Landmarks (3DDFA's ``benchmark_aflw2000.py``): 68-point 2D NME normalised by sqrt(w * h) of the
  ground-truth landmark box, averaged within the |yaw| bins [0, 30], (30, 60], (60, 90] and then
  over the three bins.
- Head pose (FSA-Net's protocol): mean absolute error of yaw, pitch and roll in degrees and their
  mean, over the faces whose ground-truth angles are all within 99 degrees.

Ground truth comes from the dataset's own ``IMAGE.mat`` files (``pt3d_68`` (3, 68) and ``Pose_Para``
(1, 7) = pitch, yaw, roll in radians, ...), or, for images without them, from the arrays 3DDFA keeps
(``AFLW2000-3D.pts68.npy``, ``AFLW2000-3D-Reannotated.pts68.npy``, ``AFLW2000-3D.pose.npy`` (yaw
only) and ``filelist.txt``) in the folder or in ``gt_dir``. With those arrays only yaw has a ground
truth, so pitch and roll are reported only where ``.mat`` files exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
POSE_LIMIT_DEG = 99.0
NPY_FILES = {
    "original": "AFLW2000-3D.pts68.npy",
    "reannotated": "AFLW2000-3D-Reannotated.pts68.npy",
    "yaw": "AFLW2000-3D.pose.npy",
    "list": "filelist.txt",
}


@dataclass
class Aflw2000Face:
    """One image's ground truth: 2D points (68, 2) in pixels, pose in degrees (nan where unknown)."""

    image: Path
    points: np.ndarray
    pose_deg: np.ndarray  # pitch, yaw, roll
    extra: dict = field(default_factory=dict)


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An AFLW2000-3D ``.mat``: (68, 2) points from ``pt3d_68`` and (3,) pitch/yaw/roll degrees."""
    from scipy.io import loadmat

    mat = loadmat(str(path))
    if "pt3d_68" not in mat or "Pose_Para" not in mat:
        raise ValueError(f"{path}: not an AFLW2000-3D annotation (needs pt3d_68 and Pose_Para)")
    pts = np.asarray(mat["pt3d_68"], np.float64)
    if pts.shape[0] != 3 and pts.shape[-1] == 3:
        pts = pts.T
    pose = np.asarray(mat["Pose_Para"], np.float64).ravel()[:3]
    return pts[:2].T.copy(), np.degrees(pose)


def read_npy_tables(folder: Path, points: str = "original") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """3DDFA's arrays -> {image name: ((68, 2) points, (3,) pose with pitch and roll nan)}."""
    names = (folder / NPY_FILES["list"]).read_text().split()
    pts = np.load(folder / NPY_FILES[points])
    yaw = np.load(folder / NPY_FILES["yaw"])
    if len(pts) != len(names) or len(yaw) != len(names):
        raise ValueError(f"{folder}: {len(names)} names but {len(pts)} point sets and {len(yaw)} yaws")
    return {
        n: (np.asarray(p[:2], np.float64).T.copy(), np.array([math.nan, float(y), math.nan]))
        for n, p, y in zip(names, pts, yaw)
    }


def find_faces(folder: Path, gt_dir: Path | None = None, points: str = "original") -> list[Aflw2000Face]:
    """Every image of the folder with a ground truth (its .mat, else a row of 3DDFA's arrays)."""
    from engine.io.formats import IMAGE_SUFFIXES

    folder = Path(folder)
    table_dir = Path(gt_dir) if gt_dir else folder
    tables = read_npy_tables(table_dir, points) if (table_dir / NPY_FILES["list"]).is_file() else {}
    faces = []
    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        mat = image.with_suffix(".mat")
        if mat.is_file():
            pts, pose = read_mat(mat)
            faces.append(Aflw2000Face(image, pts, pose, {"source": "mat"}))
        elif image.name in tables:
            pts, pose = tables[image.name]
            faces.append(Aflw2000Face(image, pts, pose, {"source": f"3ddfa-npy:{points}"}))
    return faces


def box_nme(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean point error / sqrt(w * h) of the ground truth's bounding box (3DDFA)."""
    w, h = truth.max(0) - truth.min(0)
    return float(np.linalg.norm(pred - truth, axis=1).mean() / math.sqrt(max(w * h, 1e-12)))


def yaw_binned(nme: np.ndarray, yaw_deg: np.ndarray) -> dict[str, float | int | None]:
    """NME (%) per |yaw| bin, their mean (the 3DDFA figure) and the counts."""
    out: dict[str, float | int | None] = {}
    means = []
    for lo, hi in YAW_BINS:
        a = np.abs(yaw_deg)
        sel = (a >= lo) & (a <= hi) if lo == 0 else (a > lo) & (a <= hi)
        value = float(nme[sel].mean() * 100) if sel.any() else None
        out[f"[{lo:g},{hi:g}]"], out[f"n[{lo:g},{hi:g}]"] = value, int(sel.sum())
        if value is not None:
            means.append(value)
    out["mean_of_bins"] = float(np.mean(means)) if means else None
    out["all"] = float(nme.mean() * 100) if len(nme) else None
    return out


def pose_errors(pred_deg: np.ndarray, gt_deg: np.ndarray) -> dict[str, float | int | None]:
    """FSA-Net protocol: MAE per angle and mean, faces with any |gt angle| > 99 deg dropped.
    Angles whose ground truth is unknown (nan) are left out of their own column."""
    from engine.headpose import pose_mae

    pred, gt = np.asarray(pred_deg, np.float64).reshape(-1, 3), np.asarray(gt_deg, np.float64).reshape(-1, 3)
    keep = ~(np.abs(np.nan_to_num(gt)) > POSE_LIMIT_DEG).any(1)
    err = pose_mae(pred[keep], gt[keep])
    out: dict[str, float | int | None] = {"n": int(keep.sum())}
    columns = []
    for i, name in enumerate(("pitch", "yaw", "roll")):
        known = ~np.isnan(err[:, i])
        out[name] = float(err[known, i].mean()) if known.any() else None
        if out[name] is not None:
            columns.append(out[name])
    out["mean"] = float(np.mean(columns)) if len(columns) == 3 else None
    out["angles_with_ground_truth"] = len(columns)
    return out


# ------------------------------------------------------------------------------------ runner


def _one_face(face: Aflw2000Face, det, recons: dict) -> dict:
    """Points and pose of every method on one image (or why there are none)."""
    from engine.evaluation.common import image_landmarks
    from engine.evaluation.landmarks300w import match_face
    from engine.headpose import benchmark_pose_deg
    from engine.io.image import load_image

    row: dict = {"image": str(face.image), "gt_pose_deg": face.pose_deg.tolist(), "detected": False}
    image = load_image(face.image)
    found = match_face(det.detect(image), face.points)
    if found is None:
        return row
    row |= {"detected": True, "points": {"detector": found.landmarks.tolist()}, "pose_deg": {}}
    for name, recon in recons.items():
        rec = recon.reconstruct_face(image, found)
        row["points"][name] = image_landmarks(rec, recon.model).tolist()
        row["pose_deg"][name] = benchmark_pose_deg(rec.params.rotation.detach().cpu())[0].tolist()
    return row


def evaluate_aflw2000(
    folder: Path,
    methods: list[str] | None = None,
    weights: dict | None = None,
    gt_dir: Path | None = None,
    points: str = "original",
    detector: str = "auto",
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Both protocols on a folder of AFLW2000-3D images; per-image rows included."""
    import time

    from tqdm import tqdm

    from engine.detect import create_detector
    from engine.evaluation.common import machine_info, method_reconstructors

    started = time.perf_counter()
    faces = find_faces(folder, gt_dir, points)
    if not faces:
        raise FileNotFoundError(
            f"{folder}: no AFLW2000-3D images with a ground truth (.mat beside "
            "them, or 3DDFA's filelist.txt + .npy arrays; see --aflw-gt)"
        )
    det = detector if hasattr(detector, "detect") else create_detector(detector)
    recons, skipped = method_reconstructors(methods or ["fit", "cest"], weights or {}, device, det)
    rows = [
        _one_face(f, det, recons) for f in tqdm(faces, desc="AFLW2000-3D", unit="face", disable=not progress)
    ]
    found = [(f, r) for f, r in zip(faces, rows) if r["detected"]]
    names = ["detector", *recons]
    nme = {}
    for name in names:
        values = np.array([box_nme(np.array(r["points"][name]), f.points) for f, r in found])
        for (_f, r), v in zip(found, values):
            r.setdefault("nme_box", {})[name] = float(v)
        nme[name] = yaw_binned(values, np.array([f.pose_deg[1] for f, _ in found]))
    pose = {
        name: pose_errors(
            np.array([r["pose_deg"][name] for _, r in found]).reshape(-1, 3),
            np.array([f.pose_deg for f, _ in found]).reshape(-1, 3),
        )
        for name in recons
    }
    return {
        "benchmark": "aflw2000-3d",
        "folder": str(folder),
        "faces": len(faces),
        "detected": len(found),
        "ground_truth": sorted({f.extra["source"] for f in faces}),
        "detector": getattr(det, "name", type(det).__name__),
        "nme_box_percent": nme,
        "pose_mae_deg": pose,
        "skipped": skipped,
        "machine": machine_info(),
        "seconds": time.perf_counter() - started,
        "per_image": rows,
    }


PUBLISHED = {
    "nme": "3DDFA 4.94, PRNet 3.62, 3DDFA_V2 3.51, SynergyNet 3.41 (full set, their papers)",
    "pose": "HopeNet 6.16, FSA-Net 5.07, 3DDFA_V2 4.27, 6DRepNet 3.97, SynergyNet 3.35 (full set)",
}


def _cell(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def aflw2000_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# AFLW2000-3D on {results['faces']} images ({results['folder']})",
        "",
        f"Ground truth: {', '.join(results['ground_truth'])}. Detector `{results['detector']}` found "
        f"{results['detected']} of {results['faces']}. Machine: {m['cpu']}, {m['cores']} cores.",
        "",
        "68-point NME (% of sqrt(w*h) of the ground-truth box), 3DDFA protocol:",
        "",
        "| landmarks | [0,30] | (30,60] | (60,90] | mean of bins | all |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in results["nme_box_percent"].items():
        label = name if name == "detector" else f"{name} (reprojected)"
        bins = [f"{_cell(s[f'[{lo:g},{hi:g}]'])} (n={s[f'n[{lo:g},{hi:g}]']})" for lo, hi in YAW_BINS]
        lines.append(f"| {label} | {' | '.join(bins)} | {_cell(s['mean_of_bins'])} | {_cell(s['all'])} |")
    lines += [
        "",
        f"Published: {PUBLISHED['nme']}.",
        "",
        "Head pose MAE (degrees), FSA-Net protocol (|angles| <= 99):",
        "",
        "| method | yaw | pitch | roll | mean | n |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in results["pose_mae_deg"].items():
        lines.append(
            f"| {name} | {_cell(p['yaw'])} | {_cell(p['pitch'])} | {_cell(p['roll'])} | "
            f"{_cell(p['mean'])} | {p['n']} |"
        )
    if any(p["angles_with_ground_truth"] < 3 for p in results["pose_mae_deg"].values()):
        lines.append("\nPitch and roll need the dataset's .mat files (3DDFA's arrays hold yaw only).")
    lines += ["", f"Published: {PUBLISHED['pose']}."]
    for name, why in results["skipped"].items():
        lines.append(f"\n{name}: skipped ({why})")
    return "\n".join(lines) + "\n"
