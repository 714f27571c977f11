"""Accuracy against ground truth on synthetic faces: the methods and the scores (the test set and
the landmarks given to every method are in engine/evaluation/synthetic_set.py)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine.evaluation import metrics
from engine.evaluation.common import (
    METHODS,
    default_weights,
    machine_info,
    predicted_landmarks,
    summarise,
    uv_chart_mask,
)
from engine.evaluation.synthetic_set import (  # noqa: F401 - re-exported: the benchmark's inputs
    WRONG_FACE_NME,
    LandmarkInputs,
    SyntheticSet,
    light_angles,
    source_landmarks,
    synthetic_set,
)
from engine.facemodel import FaceModel
from engine.params import FaceParams
from engine.render import Renderer
from engine.render.uv import uv_normals
from engine.sh import ambient_light, sh_shading

log = logging.getLogger("cest")
METRICS = {  # key: (label, unit / scale shown in the table)
    "side": "SIDE (x10^-2)",
    "depth_cm": "depth std (cm)",
    "mad": "MAD (deg)",
    "albedo": "albedo RMSE",
    "albedo_seen": "albedo RMSE seen",
    "shading_in_albedo": "shading in albedo",
    "nme": "NME (% IOD)",
    "nme_inner": "NME 51 inner (% IOD)",
}
DEFINITIONS = {
    "side": (
        "Unsup3D SIDE x 10^-2: std over the face of log D_pred - log D_gt, D = 1 - tan(5 deg) z_ndc (the "
        "distance an Unsup3D camera, fov 10 deg at distance 1, would see); mask = GT mask and predicted "
        "mask, each eroded by 1 px"
    ),
    "depth_cm": "std over the same pixels of (z_pred - z_gt) in cm of the true face (z_ndc / true scale)",
    "mad": "mean angle between rendered camera-space normals, degrees, same mask",
    "albedo": (
        "RMSE in UV space over the model's UV chart at the ground-truth texture size, after a "
        "least-squares per-channel colour scale"
    ),
    "albedo_seen": (
        "the same over the UV texels the true view faces (camera-space normal z > 0.3), the part of "
        "the face a photo shows"
    ),
    "shading_in_albedo": (
        "slope of log(predicted / true albedo) on log(true shading), luminance, over the UV texels the "
        "true view faces (camera-space normal z > 0.3): 1 = the light baked into the albedo, 0 = none"
    ),
    "nme": (
        "mean 68-point landmark error / true outer-eye-corner distance (36-45), percent; the truth is the "
        "model's 68 landmark vertices projected (the jaw points do not slide to the visible contour)"
    ),
    "nme_inner": "the same over the 51 inner points (17-67: brows, eyes, nose, mouth), no jaw contour",
    "overlap": "fraction of the (eroded) true face pixels the metrics were computed on",
}
FLAT_ALBEDO = 0.5


# ------------------------------------------------------------------------------------ methods


@dataclass
class MethodResult:
    name: str
    params: FaceParams | None = None
    skipped: str | None = None  # why, when the method could not run
    seconds_per_face: float | None = None
    info: dict = field(default_factory=dict)


def _estimate(
    reconstructor, images: torch.Tensor, landmarks: torch.Tensor, batch: int, desc: str, progress: bool
) -> tuple[FaceParams, float]:
    parts, start = [], time.perf_counter()
    for lo in tqdm(range(0, images.shape[0], batch), desc=desc, unit="batch", disable=not progress):
        params = reconstructor.estimate(images[lo : lo + batch], landmarks[lo : lo + batch])
        parts.append(params.to("cpu"))
    return FaceParams.cat(parts), (time.perf_counter() - start) / max(images.shape[0], 1)


def mean_face_params(fit: FaceParams, texture_size: int = 64) -> FaceParams:
    """The mean face (zero identity and expression) at the fit's viewpoint, flat albedo, ambient light."""
    b = fit.batch_size
    return fit.replace(
        identity=torch.zeros_like(fit.identity),
        expression=torch.zeros_like(fit.expression),
        albedo=torch.full((b, 3, texture_size, texture_size), FLAT_ALBEDO),
        light=ambient_light(b),
    )


REFERENCES = {  # what each reference row is (`cest eval --synthetic N --references`)
    "true-shape@fit-view": "the true shape (identity and expression) at the landmark fit's viewpoint: "
    "what a perfect shape estimate scores with the viewpoint the landmarks give",
    "mean-face@true-view": "the mean face at the true viewpoint: what a perfect viewpoint gives with "
    "no shape estimate",
}


def reference_params(truth: FaceParams, fit: FaceParams, texture_size: int) -> dict[str, FaceParams]:
    """The reference rows' parameters (flat albedo and ambient light, as the mean face's): they
    split a method's depth and normal error into its viewpoint's part and its shape's."""
    placed = truth.replace(rotation=fit.rotation, translation=fit.translation, scale=fit.scale)
    return {
        "true-shape@fit-view": mean_face_params(placed, texture_size).replace(
            identity=truth.identity, expression=truth.expression
        ),
        "mean-face@true-view": mean_face_params(truth, texture_size),
    }


def run_methods(
    methods: list[str],
    testset: SyntheticSet,
    landmarks: torch.Tensor,
    weights: dict,
    device: str = "cpu",
    batch: int = 16,
    progress: bool = True,
    references: bool = False,
) -> dict[str, MethodResult]:
    """Every requested method on the same images and landmarks -> {name: MethodResult}; with
    ``references`` also the REFERENCES rows, after them."""
    from engine.reconstruct.reconstructor import Reconstructor

    results: dict[str, MethodResult] = {}
    fit_params = None
    if "fit" in methods or "mean" in methods or references:
        fit = Reconstructor(method="fit", device=device)
        # one face per call, as the app and the CLI fit them (de-lighting takes batches now, but a
        # batched fit agrees with one-by-one only to within a tolerance: the figures stay comparable)
        fit_params, seconds = _estimate(fit, testset.images, landmarks, 1, "fit", progress)
        if "fit" in methods:
            results["fit"] = MethodResult("fit", fit_params, seconds_per_face=seconds)
        if "mean" in methods:
            results["mean"] = MethodResult(
                "mean",
                mean_face_params(fit_params, testset.albedo.shape[-1]),
                seconds_per_face=seconds,
                info={"viewpoint": "landmark fit", "albedo": "flat"},
            )
    for name in ("cest", "cest-unconditional"):
        if name not in methods:
            continue
        path = Path(weights.get(name) or default_weights(name))
        if not path.is_file():
            results[name] = MethodResult(name, skipped=f"no weights at {path}")
            log.warning("skipping %s: no weights at %s", name, path)
            continue
        try:
            recon = Reconstructor(method="cest", weights=path, device=device, detail=False)
        except Exception as err:  # corrupt file, other model config: skip, say why
            results[name] = MethodResult(name, skipped=f"cannot load {path}: {err}")
            log.warning("skipping %s: %s", name, err)
            continue
        config = recon.network.config
        info = {
            "weights": str(path),
            "conditional": bool(config.conditional),
            "image_size": config.image_size,
        }
        expected = name == "cest"
        if config.conditional != expected:
            info["warning"] = f"weights have conditional={config.conditional}, expected {expected}"
            log.warning("%s: %s", name, info["warning"])
        params, seconds = _estimate(recon, testset.images, landmarks, batch, name, progress)
        results[name] = MethodResult(name, params, seconds_per_face=seconds, info=info)
    ordered = {m: results[m] for m in methods if m in results}
    if references and fit_params is not None:
        for name, params in reference_params(testset.params, fit_params, testset.albedo.shape[-1]).items():
            ordered[name] = MethodResult(name, params, info={"reference": REFERENCES[name]})
    return ordered


@torch.no_grad()
def score(
    params: FaceParams, testset: SyntheticSet, model: FaceModel, renderer: Renderer, batch: int = 16
) -> dict[str, np.ndarray]:
    """Per-image metrics of one method's FaceParams against the test set's ground truth."""
    size, tex = testset.size, testset.albedo.shape[-1]
    chart = uv_chart_mask(model, tex)
    out: dict[str, list] = {k: [] for k in METRICS}
    out["overlap"] = []
    for lo in range(0, len(testset), batch):
        sl = slice(lo, lo + batch)
        p = params.select(sl)
        _, cam, ndc = p.geometry(model)
        render = renderer.render(cam, ndc, p.albedo, p.light, size)
        mask = metrics.erode(testset.mask[sl]) * metrics.erode(render.mask)
        gt_d, pr_d = testset.depth[sl], render.depth
        out["side"].append(
            metrics.side(
                metrics.ndc_depth_to_distance(pr_d), metrics.ndc_depth_to_distance(gt_d), mask, log=True
            )
            * 100
        )
        scale = testset.params.scale[sl].double().reshape(-1, 1, 1, 1)  # NDC per cm of the true face
        out["depth_cm"].append(metrics.side(pr_d.double() / scale, gt_d.double() / scale, mask))
        out["mad"].append(metrics.mad(render.normals, testset.normals[sl], mask))
        albedo = p.albedo.float()
        if albedo.shape[-1] != tex:
            albedo = F.interpolate(
                albedo,
                size=(tex, tex),
                mode="area" if albedo.shape[-1] > tex else "bilinear",
                **({} if albedo.shape[-1] > tex else {"align_corners": False}),
            )
        out["albedo"].append(
            metrics.albedo_error(albedo, testset.albedo[sl], chart.expand(albedo.shape[0], -1, -1, -1))
        )
        shading, facing = true_shading_uv(testset.params.select(sl), model, tex)
        out["albedo_seen"].append(metrics.albedo_error(albedo, testset.albedo[sl], facing * chart))
        out["shading_in_albedo"].append(
            metrics.shading_in_albedo(albedo, testset.albedo[sl], shading, facing * chart)
        )
        pred_lm, true_lm = predicted_landmarks(p, model, size), testset.landmarks[sl]
        out["nme"].append(metrics.landmark_nme(pred_lm, true_lm) * 100)
        out["nme_inner"].append(
            metrics.landmark_nme(pred_lm[:, 17:], true_lm[:, 17:], metrics.inter_ocular(true_lm)) * 100
        )
        gt_area = metrics.erode(testset.mask[sl]).flatten(1).sum(1)
        out["overlap"].append(mask.flatten(1).sum(1) / gt_area.clamp_min(1))
    return {k: torch.cat(v).numpy().astype(float) for k, v in out.items()}


def true_shading_uv(truth: FaceParams, model: FaceModel, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The true light's shading of the true surface in UV space (B, 3, T, T), and where the true view
    faces the surface (B, 1, T, T)."""
    _, cam, _ = truth.geometry(model)
    normals = uv_normals(model, cam, size)
    shading = sh_shading(normals.permute(0, 2, 3, 1), truth.light).permute(0, 3, 1, 2)
    return shading, (normals[:, 2:3] > 0.3).to(shading.dtype)


# ------------------------------------------------------------------------------------ running


def evaluate_synthetic(
    n: int,
    seed: int = 0,
    methods: list[str] | None = None,
    weights: dict | None = None,
    image_size: int = 128,
    texture_size: int = 64,
    supersample: int = 1,
    batch: int = 16,
    detector: str = "auto",
    device: str = "cpu",
    progress: bool = True,
    keep: bool = False,
    references: bool = False,
) -> dict:
    """Run the synthetic benchmark; returns the results dict (JSON-ready unless ``keep``); with
    ``references`` the REFERENCES rows too.

    With ``keep`` the dict also holds ``_testset``, ``_methods`` and ``_model`` for pictures.
    """
    from engine.detect import create_detector

    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    started = time.perf_counter()
    model = FaceModel.load()
    testset = synthetic_set(n, seed, image_size, texture_size, supersample, model, progress)
    inputs = source_landmarks(testset, create_detector(detector), seed, progress=progress)
    ran = run_methods(methods, testset, inputs.landmarks, weights or {}, device, batch, progress, references)
    renderer = Renderer(model.faces, model.uvs)
    pose, light = testset.pose_deg(), testset.light_deg()
    per_image = [
        {
            "index": i,
            "pitch_deg": float(pose[i, 0]),
            "yaw_deg": float(pose[i, 1]),
            "roll_deg": float(pose[i, 2]),
            "light_azimuth_deg": float(light[i, 0]),
            "light_elevation_deg": float(light[i, 1]),
            "landmarks": inputs.source[i],
            "detector_nme": inputs.detector_nme[i],
            "methods": {},
        }
        for i in range(len(testset))
    ]
    table: dict[str, dict] = {}
    for name, result in tqdm(ran.items(), desc="scoring", unit="method", disable=not progress):
        if result.params is None:
            table[name] = {"skipped": result.skipped}
            continue
        scores = score(result.params, testset, model, renderer, batch)
        table[name] = {k: summarise(v) for k, v in scores.items()}
        table[name].update(seconds_per_face=result.seconds_per_face, info=result.info)
        for i, row in enumerate(per_image):
            row["methods"][name] = {
                k: (None if not math.isfinite(v[i]) else float(v[i])) for k, v in scores.items()
            }
    used = np.array([v if v is not None else np.nan for v, s in zip(inputs.detector_nme, inputs.source)])
    results = {
        "benchmark": "synthetic",
        "n": len(testset),
        "seed": seed,
        "split": "heldout",
        "image_size": image_size,
        "texture_size": texture_size,
        "supersample": supersample,
        "methods_requested": methods,
        "landmarks": inputs.summary(),
        "input_landmarks_nme": summarise(
            metrics.landmark_nme(inputs.landmarks, testset.landmarks).numpy() * 100
        ),
        "input_landmarks_nme_inner": summarise(
            metrics.landmark_nme(
                inputs.landmarks[:, 17:], testset.landmarks[:, 17:], metrics.inter_ocular(testset.landmarks)
            ).numpy()
            * 100
        ),
        "detector_nme_found": summarise(used * 100),
        "results": table,
        "definitions": DEFINITIONS,
        "references": {k: v for k, v in REFERENCES.items() if k in table},
        "machine": machine_info(),
        "seconds": time.perf_counter() - started,
        "per_image": per_image,
    }
    if keep:
        results.update(_testset=testset, _methods=ran, _model=model, _inputs=inputs)
    return results
