"""`cest eval`: accuracy against ground truth (synthetic faces) and landmark NME on annotated photos.

``cest eval --synthetic N`` renders N held-out synthetic faces (engine.data.synthetic, split
``heldout``: seeds disjoint from every training seed) and runs every method on the same images:

- ``cest``: the trained conditional chain (resources/weights/cest_default.safetensors or --weights);
- ``cest-unconditional``: the paper's baseline, four estimators that each see only the image
  (resources/weights/cest_unconditional.safetensors or --weights-unconditional);
- ``fit``: the landmark fit (viewpoint + shape from 68 points, albedo unwrapped and de-lit);
- ``mean``: the mean face (zero identity and expression) placed by the fit's viewpoint, flat albedo.

A method whose weights are missing is skipped and the report says so.

Landmarks fed to every method come from the real detector run on the rendered image; where it
finds no face (or a face whose landmarks are off by more than half the inter-ocular distance) they
are the ground truth plus zero-mean Gaussian noise of the detector's measured size: per point and
axis, the RMS of the detector's error on the images where it did find the face (as a fraction of the
inter-ocular distance). The report counts which images used which.

Metrics (engine.metrics), on the face region:

- SIDE, as Unsup3D: ``sqrt(mean(d^2) - mean(d)^2)`` with ``d = log D_pred - log D_gt`` on the
  intersection of the ground-truth and predicted masks, each eroded by one pixel. Our depth is
  weak-perspective NDC z, so D is the distance a camera like Unsup3D's (fov 10 degrees, face at
  distance 1) would measure (metrics.ndc_depth_to_distance); the mean subtraction removes the
  unknown depth offset, and the log makes it scale-invariant. Reported x 10^-2, like Unsup3D.
  Also reported: the same on linear depth in centimetres of the true face (``depth_cm``).
- MAD: mean angle between the rendered camera-space normal maps, degrees, same mask.
- albedo: RMSE in UV space (the face model's UV chart, at the ground truth's texture size) after a
  least-squares per-channel colour scale; UV space compares the same point of the face whatever
  the pose and the geometry error, and includes the parts the image does not show.
- NME: mean over the 68 landmark vertices, projected, vs. the true ones, over the true
  inter-ocular distance (outer eye corners 36/45). The detector's own NME is reported too.

``cest eval --landmarks FOLDER`` scores 68-landmark NME on photos annotated with iBUG ``.pts``
files beside the images or dlib XML files: the detector, and the landmark fit's reprojection.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine import metrics
from engine.evaluation.landmarks300w import evaluate_landmarks, landmarks_markdown
from engine.camera import ndc_to_pixels
from engine.facemodel import FaceModel
from engine.params import FaceParams
from engine.render import Renderer
from engine.resources import resources_root
from engine.sh import ambient_light

log = logging.getLogger("cest")

METHODS = ("cest", "cest-unconditional", "fit", "mean")
DEFAULT_WEIGHTS = {
    "cest": "weights/cest_default.safetensors",
    "cest-unconditional": "weights/cest_unconditional.safetensors",
}
METRICS = {  # key: (label, unit / scale shown in the table)
    "side": "SIDE (x10^-2)",
    "depth_cm": "depth std (cm)",
    "mad": "MAD (deg)",
    "albedo": "albedo RMSE",
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
    "nme": (
        "mean 68-point landmark error / true outer-eye-corner distance (36-45), percent; the truth is the "
        "model's 68 landmark vertices projected (the jaw points do not slide to the visible contour)"
    ),
    "nme_inner": "the same over the 51 inner points (17-67: brows, eyes, nose, mouth), no jaw contour",
    "overlap": "fraction of the (eroded) true face pixels the metrics were computed on",
}
WRONG_FACE_NME = 0.5  # a detection this far from the truth found something else
FLAT_ALBEDO = 0.5
DEFAULT_OUT = Path("benchmarks")


# ------------------------------------------------------------------------------------ test set


@dataclass
class SyntheticSet:
    """N held-out synthetic faces and their ground truth (all on the CPU)."""

    images: torch.Tensor  # (N, 3, S, S) float [0, 1]
    mask: torch.Tensor  # (N, 1, S, S) exact (binary) face coverage
    depth: torch.Tensor  # (N, 1, S, S) NDC z, larger = closer
    normals: torch.Tensor  # (N, 3, S, S) camera space
    albedo: torch.Tensor  # (N, 3, T, T) UV map
    landmarks: torch.Tensor  # (N, 68, 2) true landmark vertices, image pixels
    params: FaceParams
    seed: int
    indices: list[int]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def uint8(self, i: int) -> np.ndarray:
        return (self.images[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)

    def pose_deg(self) -> np.ndarray:
        """(N, 3) pitch, yaw, roll in degrees."""
        return np.degrees(self.params.rotation.numpy())

    def light_deg(self) -> np.ndarray:
        """(N, 2) azimuth, elevation (degrees) of the dominant light direction."""
        return light_angles(self.params.light)


def light_angles(light: torch.Tensor) -> np.ndarray:
    """(N, 9, 3) SH light -> (N, 2) azimuth (0 = from the camera, + = from the viewer's right) and
    elevation of its band-1 direction (the basis order is 1, x, y, z, ...: engine.sh)."""
    d = light[:, 1:4].mean(-1).double()
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    azimuth = torch.rad2deg(torch.atan2(d[:, 0], d[:, 2]))
    elevation = torch.rad2deg(torch.asin(d[:, 1].clamp(-1, 1)))
    return torch.stack([azimuth, elevation], 1).numpy()


def synthetic_set(
    n: int,
    seed: int = 0,
    image_size: int = 128,
    texture_size: int = 64,
    supersample: int = 1,
    face_model: FaceModel | None = None,
    progress: bool = True,
) -> SyntheticSet:
    """Render ``n`` held-out faces (one frame per synthetic person) with their ground-truth maps.

    A thin adapter over engine.data.synthetic: clips of one frame, ``with_maps`` on.
    """
    from engine.data.synthetic import SyntheticConfig, SyntheticFaces

    config = SyntheticConfig(
        image_size=image_size, texture_size=texture_size, frames=1, supersample=supersample, with_maps=True
    )
    data = SyntheticFaces(config, length=n, seed=seed, split="heldout", face_model=face_model)
    items = [data[i] for i in tqdm(range(n), desc="rendering test faces", unit="face", disable=not progress)]
    return SyntheticSet(
        images=torch.cat([it["image"] for it in items]).float() / 255,
        mask=torch.cat([(it["mask_exact"] > 0.5).float() for it in items]),
        depth=torch.cat([it["depth"] for it in items]),
        normals=torch.cat([it["normals"] for it in items]),
        albedo=torch.cat([it["params"].albedo for it in items]),
        landmarks=torch.cat([it["landmarks_true"] for it in items]),
        params=FaceParams.cat([it["params"] for it in items]),
        seed=seed,
        indices=list(range(n)),
    )


# ---------------------------------------------------------------------------------- landmarks


@dataclass
class LandmarkInputs:
    """The landmarks every method is given, and where each came from."""

    landmarks: torch.Tensor  # (N, 68, 2) image pixels
    source: list[str]  # per image: "detector", "noise (no face)", "noise (wrong face)"
    detector: str
    detector_nme: list[float | None]  # per image, None where it found nothing
    sigma_iod: np.ndarray  # (68, 2) noise std used for the fallbacks, in inter-ocular distances
    sigma_from: str

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.source:
            out[s] = out.get(s, 0) + 1
        return out

    def summary(self) -> dict:
        found = [v for v in self.detector_nme if v is not None]
        used = [v for v, s in zip(self.detector_nme, self.source) if s == "detector"]
        return {
            "detector": self.detector,
            "counts": self.counts(),
            "detector_found": len(found),
            "detector_nme_mean_used": float(np.mean(used)) if used else None,
            "fallback_noise_sigma_iod_mean": float(np.sqrt(np.mean(self.sigma_iod**2))),
            "fallback_noise_sigma_from": self.sigma_from,
            "wrong_face_nme_threshold": WRONG_FACE_NME,
        }


def source_landmarks(
    testset: SyntheticSet, detector, seed: int = 0, default_sigma_iod: float = 0.02, progress: bool = True
) -> LandmarkInputs:
    """Detector landmarks where it finds the face; elsewhere truth + noise of its measured size."""
    truth = testset.landmarks.double()
    iod = metrics.inter_ocular(truth).numpy()
    detected: list[np.ndarray | None] = []
    nme: list[float | None] = []
    for i in tqdm(range(len(testset)), desc="detecting landmarks", unit="face", disable=not progress):
        faces = detector.detect(testset.uint8(i))
        if faces:
            points = np.asarray(faces[0].landmarks, np.float64)
            detected.append(points)
            nme.append(float(metrics.landmark_nme(torch.from_numpy(points)[None], truth[i : i + 1])[0]))
        else:
            detected.append(None)
            nme.append(None)
    good = [i for i, v in enumerate(nme) if v is not None and v <= WRONG_FACE_NME]
    if len(good) >= 20:  # enough to measure each point's spread
        resid = np.stack([(detected[i] - truth[i].numpy()) / iod[i] for i in good])
        sigma = np.sqrt((resid**2).mean(0))
        sigma_from = f"per point and axis, RMS detector error on {len(good)} detected faces"
    elif good:
        resid = np.stack([(detected[i] - truth[i].numpy()) / iod[i] for i in good])
        sigma = np.full((68, 2), np.sqrt((resid**2).mean()))
        sigma_from = f"one value, RMS detector error on {len(good)} detected faces"
    else:
        sigma = np.full((68, 2), default_sigma_iod)
        sigma_from = f"default {default_sigma_iod} IOD (the detector found no face to measure)"
    rng = np.random.default_rng([seed, 68])
    out, source = truth.numpy().copy(), []
    for i in range(len(testset)):
        if i in good:
            out[i], kind = detected[i], "detector"
        else:
            out[i] = truth[i].numpy() + rng.normal(0, 1, (68, 2)) * sigma * iod[i]
            kind = "noise (no face)" if detected[i] is None else "noise (wrong face)"
        source.append(kind)
    name = getattr(detector, "name", type(detector).__name__)
    return LandmarkInputs(torch.from_numpy(out).float(), source, name, nme, sigma, sigma_from)


# ------------------------------------------------------------------------------------ methods


@dataclass
class MethodResult:
    name: str
    params: FaceParams | None = None
    skipped: str | None = None  # why, when the method could not run
    seconds_per_face: float | None = None
    info: dict = field(default_factory=dict)


def default_weights(method: str) -> Path:
    return resources_root() / DEFAULT_WEIGHTS[method]


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


def run_methods(
    methods: list[str],
    testset: SyntheticSet,
    landmarks: torch.Tensor,
    weights: dict,
    device: str = "cpu",
    batch: int = 16,
    progress: bool = True,
) -> dict[str, MethodResult]:
    """Every requested method on the same images and landmarks -> {name: MethodResult}."""
    from engine.infer import Reconstructor

    results: dict[str, MethodResult] = {}
    fit_params = None
    if "fit" in methods or "mean" in methods:
        fit = Reconstructor(method="fit", device=device)
        # one face per call: the fit is per face anyway, and engine.delight broadcasts (B,T,T,9) @ (B,9,3)
        # only for B = 1 at the time of writing
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
    return {m: results[m] for m in methods if m in results}


# ------------------------------------------------------------------------------------ scoring


def predicted_landmarks(params: FaceParams, model: FaceModel, size: int) -> torch.Tensor:
    _, _, ndc = params.geometry(model)
    return ndc_to_pixels(model.landmark_vertices(ndc)[..., :2], size)


def uv_chart_mask(model: FaceModel, size: int) -> torch.Tensor:
    from engine.unwrap import uv_layout

    return uv_layout(model, size)[2].float()[None, None].cpu()


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
        pred_lm, true_lm = predicted_landmarks(p, model, size), testset.landmarks[sl]
        out["nme"].append(metrics.landmark_nme(pred_lm, true_lm) * 100)
        out["nme_inner"].append(
            metrics.landmark_nme(pred_lm[:, 17:], true_lm[:, 17:], metrics.inter_ocular(true_lm)) * 100
        )
        gt_area = metrics.erode(testset.mask[sl]).flatten(1).sum(1)
        out["overlap"].append(mask.flatten(1).sum(1) / gt_area.clamp_min(1))
    return {k: torch.cat(v).numpy().astype(float) for k, v in out.items()}


def summarise(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"mean": None, "median": None, "std": None, "n": 0}
    return {
        "mean": float(finite.mean()),
        "median": float(np.median(finite)),
        "std": float(finite.std()),
        "n": len(finite),
    }


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


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
) -> dict:
    """Run the synthetic benchmark; returns the results dict (JSON-ready unless ``keep``).

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
    ran = run_methods(methods, testset, inputs.landmarks, weights or {}, device, batch, progress)
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
        "machine": machine_info(),
        "seconds": time.perf_counter() - started,
        "per_image": per_image,
    }
    if keep:
        results.update(_testset=testset, _methods=ran, _model=model, _inputs=inputs)
    return results


def public(results: dict) -> dict:
    return {k: v for k, v in results.items() if not k.startswith("_")}


def _fmt(stats, digits: int = 2) -> str:
    if not isinstance(stats, dict) or stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def markdown_table(results: dict) -> str:
    """The synthetic results as Markdown (mean ± std over images)."""
    m = results["machine"]
    lm = results["landmarks"]
    lines = [
        f"# Synthetic benchmark: {results['n']} held-out faces (seed {results['seed']}, "
        f"{results['image_size']} px)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads); "
        f"run took {results['seconds']:.0f} s.",
        "",
        "| method | " + " | ".join(METRICS.values()) + " | s/face |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for name, row in results["results"].items():
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} |" + " |" * (len(METRICS)))
            continue
        cells = [_fmt(row[k], 3 if k == "albedo" else 2) for k in METRICS]
        spf = row.get("seconds_per_face")
        timing = f"{spf * 1000:.0f} ms" if spf else "n/a"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {timing} |")
    lines.append(
        f"| input landmarks | | | | | {_fmt(results['input_landmarks_nme'])} | "
        f"{_fmt(results['input_landmarks_nme_inner'])} | |"
    )
    counts = ", ".join(f"{v} {k}" for k, v in lm["counts"].items())
    lines += [
        "",
        f"Landmarks given to every method: {counts} (detector `{lm['detector']}`; it found a face in "
        f"{lm['detector_found']} of {results['n']} images). Fallback: ground truth + Gaussian noise, "
        f"sigma {lm['fallback_noise_sigma_iod_mean']:.4f} IOD RMS ({lm['fallback_noise_sigma_from']}).",
        "",
        "Definitions:",
        "",
    ]
    lines += [f"- **{k}**: {v}" for k, v in results["definitions"].items()]
    notes = [
        f"- {name}: {row['info']['warning']}"
        for name, row in results["results"].items()
        if isinstance(row.get("info"), dict) and "warning" in row["info"]
    ]
    if notes:
        lines += ["", "Warnings:", ""] + notes
    return "\n".join(lines) + "\n"


def write_results(results: dict, out: Path, stem: str = "synthetic_eval") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(public(results), indent=1) + "\n")
    md_path.write_text(markdown_table(results))
    return [json_path, md_path]


# -------------------------------------------------------------------------------------- plots


def _binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres, means, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (x >= lo) & (x < hi) & np.isfinite(y)
        if sel.any():
            centres.append((lo + hi) / 2)
            means.append(y[sel].mean())
            counts.append(int(sel.sum()))
    return np.array(centres), np.array(means), np.array(counts)


def plot_breakdowns(results: dict, out: Path, stem: str = "synthetic") -> list[Path]:
    """Error per yaw and per light direction (azimuth, elevation), one panel per metric, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["per_image"]
    names = [n for n, r in results["results"].items() if "skipped" not in r]
    axes_spec = {
        "yaw": ("yaw_deg", np.arange(-75, 76, 15), "yaw (degrees)"),
        "light_azimuth": (
            "light_azimuth_deg",
            np.arange(-90, 91, 30),
            "light azimuth (degrees, + = viewer's right)",
        ),
        "light_elevation": (
            "light_elevation_deg",
            np.arange(-30, 61, 15),
            "light elevation (degrees, + = above)",
        ),
    }
    shown = ["side", "mad", "albedo", "nme"]
    paths = []
    for key, (field_name, edges, label) in axes_spec.items():
        x = np.array([r[field_name] for r in rows])
        fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4))
        for ax, metric in zip(axes, shown):
            for name in names:
                y = np.array(
                    [
                        np.nan if r["methods"][name][metric] is None else r["methods"][name][metric]
                        for r in rows
                    ]
                )
                c, m, _ = _binned(x, y, edges)
                ax.plot(c, m, marker="o", label=name)
            ax.set_title(METRICS[metric])
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        counts = np.histogram(x, edges)[0]
        axes[0].legend(fontsize=8)
        fig.suptitle(
            f"error per {key.replace('_', ' ')} ({results['n']} faces; per bin: "
            f"{', '.join(str(c) for c in counts)})",
            fontsize=9,
        )
        fig.tight_layout()
        path = out / f"{stem}_error_vs_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _normal_rgb(normals: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    img = (normals * 0.5 + 0.5) * mask + (1 - mask)
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


@torch.no_grad()
def save_examples(results: dict, out: Path, count: int = 6, stem: str = "synthetic") -> Path | None:
    """Input | truth (normals, albedo-shaded render) | per method: re-render over the input, normals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    testset, ran, model = results["_testset"], results["_methods"], results["_model"]
    inputs = results["_inputs"]
    ran = {k: v for k, v in ran.items() if v.params is not None}
    count = min(count, len(testset))
    if count == 0:
        return None
    renderer = Renderer(model.faces, model.uvs)
    size = testset.size
    idx = list(range(count))
    columns = (
        ["input + landmarks", "true normals"] + [f"{n}: render" for n in ran] + [f"{n}: normals" for n in ran]
    )
    fig, axes = plt.subplots(count, len(columns), figsize=(1.9 * len(columns), 1.95 * count), squeeze=False)
    renders = {}
    for name, res in ran.items():
        p = res.params.select(slice(0, count))
        _, cam, ndc = p.geometry(model)
        renders[name] = renderer.render(cam, ndc, p.albedo, p.light, size, background=testset.images[:count])
    for r, i in enumerate(idx):
        panels = [
            testset.images[i].permute(1, 2, 0).numpy(),
            _normal_rgb(testset.normals[i], testset.mask[i]),
        ]
        panels += [renders[n].image[r].clamp(0, 1).permute(1, 2, 0).numpy() for n in ran]
        panels += [_normal_rgb(renders[n].normals[r], renders[n].mask[r]) for n in ran]
        for c, img in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=7)
        lm = inputs.landmarks[i].numpy()
        axes[r, 0].scatter(lm[:, 0], lm[:, 1], s=1.5, c="lime" if inputs.source[i] == "detector" else "red")
        row = results["per_image"][i]
        axes[r, 0].set_ylabel(f"#{i} yaw {row['yaw_deg']:.0f}°", fontsize=7)
        for c, name in enumerate(ran):
            mm = row["methods"][name]
            axes[r, 2 + len(ran) + c].set_xlabel(f"MAD {mm['mad']:.1f} SIDE {mm['side']:.2f}", fontsize=6)
    fig.tight_layout()
    path = out / f"{stem}_examples.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------- CLI


def _detector(args):
    """The --detector backend, or the default one with the --refiner file."""
    if args.refiner is None:
        return args.detector
    from engine.detect import MediaPipeDetector

    return MediaPipeDetector(refiner=args.refiner)


def _run_same_person(args, methods, weights, progress: bool, out: Path) -> int:
    from engine.evaluation.same_person import evaluate_same_person, same_person_markdown

    results = evaluate_same_person(args.same_person, methods, weights, args.device, progress=progress,
                                   pattern=args.people)
    (out / "same_person.json").write_text(json.dumps(results, indent=1) + "\n")
    text = same_person_markdown(results)
    (out / "same_person.md").write_text(text)
    print(text)
    print(json.dumps({k: results[k] for k in ("benchmark", "people", "methods")}))
    return 0


def _run_aflw2000(args, methods, weights, progress: bool, out: Path) -> int:
    from engine.evaluation.aflw2000 import aflw2000_markdown, evaluate_aflw2000

    results = evaluate_aflw2000(args.aflw2000, methods, weights, args.aflw_gt, args.aflw_points,
                                _detector(args), args.device, progress)
    (out / "aflw2000.json").write_text(json.dumps(results, indent=1) + "\n")
    text = aflw2000_markdown(results)
    (out / "aflw2000.md").write_text(text)
    print(text)
    print(json.dumps({k: results[k] for k in ("benchmark", "faces", "detected", "nme_box_percent", "pose_mae_deg")}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cest eval",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--synthetic", type=int, metavar="N", help="evaluate on N held-out synthetic faces")
    what.add_argument(
        "--landmarks",
        type=Path,
        metavar="FOLDER",
        help="folder of images with iBUG .pts beside them and/or dlib XML files (or one XML)",
    )
    what.add_argument(
        "--aflw2000",
        type=Path,
        metavar="DIR",
        help="AFLW2000-3D images with their .mat files (or 3DDFA's .npy arrays, see --aflw-gt)",
    )
    what.add_argument(
        "--same-person",
        type=Path,
        metavar="DIR",
        help="one folder per person with several photos: within/between-person shape and albedo distance",
    )
    p.add_argument("--people", default="*", help="with --same-person: glob of the person folders (e.g. '[S-Z]*')")
    p.add_argument("--aflw-gt", type=Path, help="folder of 3DDFA's AFLW2000-3D arrays (default: DIR)")
    p.add_argument(
        "--aflw-points",
        choices=("original", "reannotated"),
        default="original",
        help="which 3DDFA 2D points to score against when no .mat is present (default: original)",
    )
    p.add_argument("--seed", type=int, default=0, help="test-set seed (held-out split; default 0)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for JSON, Markdown and PNGs")
    p.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated, from {','.join(METHODS)} (default: all; --landmarks: fit,cest)",
    )
    p.add_argument(
        "--weights", type=Path, help="CEST weights (default resources/" + DEFAULT_WEIGHTS["cest"] + ")"
    )
    p.add_argument(
        "--weights-unconditional",
        type=Path,
        help="ablation weights (default resources/" + DEFAULT_WEIGHTS["cest-unconditional"] + ")",
    )
    p.add_argument(
        "--plots", action="store_true", help="error per yaw / light direction plots and example renders"
    )
    p.add_argument("--examples", type=int, default=6, help="faces in the side-by-side picture (with --plots)")
    p.add_argument("--image-size", type=int, default=128, help="synthetic image size (the training size)")
    p.add_argument("--texture-size", type=int, default=64, help="ground-truth albedo map size")
    p.add_argument("--supersample", type=int, default=1, help="anti-aliasing of the synthetic images")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--detector", default="auto", help="detector backend (engine.detect)")
    p.add_argument("--refiner", type=Path, default=None,
                   help="with --landmarks/--aflw2000: another landmark refiner file for the default detector")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--pts-zero-based", action="store_true", help=".pts files hold 0-based pixels (default: 1-based)"
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    weights = {"cest": args.weights, "cest-unconditional": args.weights_unconditional}
    progress = not args.no_progress
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.aflw2000 is not None:
        return _run_aflw2000(args, methods, weights, progress, out)
    if args.same_person is not None:
        return _run_same_person(args, methods, weights, progress, out)
    if args.landmarks is not None:
        results = evaluate_landmarks(
            args.landmarks, methods, weights, not args.pts_zero_based, _detector(args), args.device, progress
        )
        (out / "landmarks_nme.json").write_text(json.dumps(results, indent=1) + "\n")
        text = landmarks_markdown(results)
        (out / "landmarks_nme.md").write_text(text)
        print(text)
        print(json.dumps({"benchmark": "landmarks", "faces": results["faces"], "detected": results["detected"],
                          "figures_300w": results["figures_300w"]}))
        return 0
    if args.synthetic <= 0:
        print("error: --synthetic needs N > 0", file=sys.stderr)
        return 2
    if methods:
        bad = [m for m in methods if m not in METHODS]
        if bad:
            print(f"error: unknown methods {bad}; choose from {', '.join(METHODS)}", file=sys.stderr)
            return 2
    results = evaluate_synthetic(
        args.synthetic,
        args.seed,
        methods,
        weights,
        args.image_size,
        args.texture_size,
        args.supersample,
        args.batch,
        args.detector,
        args.device,
        progress,
        keep=args.plots,
    )
    paths = write_results(results, out)
    if args.plots:
        paths += plot_breakdowns(results, out)
        if (example := save_examples(results, out, args.examples)) is not None:
            paths.append(example)
    text = markdown_table(results)
    print(text)
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
