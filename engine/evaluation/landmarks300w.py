"""300-W style landmark figures on annotated photos: the detector's points and the methods'
reprojected model landmarks, NME by the outer-eye-corner distance, inner 51, failure rate and AUC."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.evaluation import metrics
from engine.evaluation.landmark_figures import INNER, point_errors
from engine.evaluation.landmark_figures import figures as landmark_figures


def match_face(faces, truth: np.ndarray):
    """The detection whose landmarks' centre is nearest the annotation's, if within one IOD."""
    iod = float(metrics.inter_ocular(torch.from_numpy(truth)[None].double())[0])
    best, best_d = None, math.inf
    for face in faces:
        d = float(np.linalg.norm(np.asarray(face.landmarks).mean(0) - truth.mean(0)))
        if d < best_d:
            best, best_d = face, d
    return best if best is not None and best_d <= iod else None


def evaluate_landmarks(
    folder: Path,
    methods: list[str] | None = None,
    weights: dict | None = None,
    one_based: bool = True,
    detector: str = "auto",
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """68-point NME of the detector (and the methods' reprojected landmarks) on annotated photos."""
    from engine.detect import create_detector
    from engine.evaluation.common import image_landmarks, machine_info, method_reconstructors, summarise
    from engine.io.annotations import find_annotated_images
    from engine.io.image import load_image

    started = time.perf_counter()
    faces = [f for f in find_annotated_images(folder, one_based) if len(f.points) == 68]
    if not faces:
        raise FileNotFoundError(
            f"{folder}: no images with 68-point annotations (.pts beside them or dlib XML)"
        )
    det = detector if hasattr(detector, "detect") else create_detector(detector)
    methods = [m for m in (methods or ["fit", "cest"]) if m in ("fit", "cest", "cest-unconditional")]
    recons, skipped = method_reconstructors(methods, weights, device, det)
    rows = []
    for ann in tqdm(faces, desc="annotated faces", unit="face", disable=not progress):
        truth = np.asarray(ann.points, np.float64)
        row = {"image": str(ann.image), "detected": False, "nme": {}}
        try:
            image = load_image(ann.image)
        except Exception as err:  # unreadable image: report, go on
            row["error"] = str(err)
            rows.append(row)
            continue
        scale = 1.0
        h0 = _image_height(ann.image)
        if h0 and h0 != image.shape[0]:  # load_image shrinks huge photos: annotations follow
            scale = image.shape[0] / h0
            truth = (truth + 0.5) * scale - 0.5
        face = match_face(det.detect(image), truth)
        if face is None:
            rows.append(row)
            continue
        row["detected"] = True
        row["nme_inner51"] = {}
        predictions = {"detector": face.landmarks.astype(np.float64)}
        for name, recon in recons.items():
            predictions[name] = image_landmarks(recon.reconstruct_face(image, face), recon.model)
        for name, pts in predictions.items():
            errors = point_errors(pts, truth)
            row["nme"][name], row["nme_inner51"][name] = float(errors.mean()), float(errors[INNER].mean())
        rows.append(row)
    names = ["detector", *recons]
    summary = {n: summarise(np.array([r["nme"][n] * 100 for r in rows if n in r["nme"]])) for n in names}
    standard = {
        n: landmark_figures(
            np.array([r["nme"][n] for r in rows if n in r["nme"]]),
            np.array([r["nme_inner51"][n] for r in rows if n in r["nme"]]),
        )
        for n in names
    }
    return {
        "benchmark": "landmarks",
        "folder": str(folder),
        "faces": len(rows),
        "detected": sum(r["detected"] for r in rows),
        "detector": getattr(det, "name", type(det).__name__),
        "pts_one_based": one_based,
        "nme_percent_iod": summary,
        "figures_300w": standard,
        "skipped": skipped,
        "machine": machine_info(),
        "seconds": time.perf_counter() - started,
        "per_image": rows,
    }


def _image_height(path: Path) -> int | None:
    try:
        from PIL import Image, ImageOps

        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).size[1]
    except Exception:
        return None


def landmarks_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# Landmark NME on {results['faces']} annotated faces ({results['folder']})",
        "",
        f"Detector `{results['detector']}` found {results['detected']} of {results['faces']} faces; NME over "
        "the found ones, % of the outer-eye-corner distance. Machine: "
        f"{m['cpu']}, {m['cores']} cores.",
        "",
        "| landmarks | NME mean | median | inner 51 | failure rate at 8% | AUC at 8% | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in results["figures_300w"].items():
        label = "detector" if name == "detector" else f"{name} (reprojected)"
        if s["nme"] is None:
            lines.append(f"| {label} | n/a | n/a | n/a | n/a | n/a | 0 |")
        else:
            lines.append(
                f"| {label} | {s['nme']:.2f} | {s['nme_median']:.2f} | {s['nme_inner51']:.2f} | "
                f"{s['failure_rate_8']:.1f}% | {s['auc_8']:.3f} | {s['n']} |"
            )
    for name, why in results["skipped"].items():
        lines.append(f"| {name} | skipped: {why} | | |")
    return "\n".join(lines) + "\n"
