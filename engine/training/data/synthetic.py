"""Synthetic faces with ground truth: ICT faces, procedural albedo, SH light, pose, background.

Each item is a clip of K frames of one synthetic person (identity and albedo fixed; pose, light
and expression drifting), framed exactly as :mod:`engine.crop` frames a detected face. Items are
deterministic functions of (split, seed, index): the ``heldout`` split draws from disjoint seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.camera import ndc_to_pixels, project, to_camera
from engine.facemodel import FaceModel
from engine.lighting import LightSettings, settings_to_sh
from engine.params import FaceParams
from engine.render import Renderer
from engine.training.data.albedo import procedural_albedo, smooth_noise
from engine.training.data.framing import frame_in_crop

SPLITS = {"train": 0, "heldout": 1}


@dataclass
class SyntheticConfig:
    image_size: int = 128
    texture_size: int = 64
    frames: int = 4
    supersample: int = 1  # render at this multiple and average down: anti-aliased edges
    identity_std: float = 1.0
    expression_prob: float = 0.15  # chance each blendshape is active
    yaw_deg: float = 25.0  # standard deviations of the pose
    pitch_deg: float = 12.0
    roll_deg: float = 10.0
    motion_deg: float = 10.0  # pose drift over a clip
    jitter: float = 0.04  # crop jitter (detector noise), in NDC
    landmark_noise_px: float = 0.7
    # the landmarks a frame is given (the fit prior's input and the landmark loss's target): the
    # shipped detector's points on the rendered frame, as a real frame gets them, where it finds the
    # face; else (and by default) the true points plus landmark_noise_px of noise
    detected_landmarks: bool = False
    with_maps: bool = False  # also keep depth and normals (the benchmark wants them)


class SyntheticFaces(torch.utils.data.Dataset):
    """``length`` synthetic clips; item i is always the same clip."""

    def __init__(
        self,
        config: SyntheticConfig | None = None,
        length: int = 1000,
        seed: int = 0,
        split: str = "train",
        face_model: FaceModel | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
        self.config = config or SyntheticConfig()
        self.length, self.seed, self.split = length, seed, split
        self.model = face_model or FaceModel.load()
        self.renderer = Renderer(self.model.faces, self.model.uvs)
        self._detector = None  # made on first use: a detector does not pickle into workers

    def __len__(self) -> int:
        return self.length

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([SPLITS[self.split], self.seed, index])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        with torch.no_grad():
            clip = render_clip(self.rng(index), self.model, self.renderer, self.config)
        if self.config.detected_landmarks:
            if self._detector is None:
                from engine.detect import create_detector

                self._detector = create_detector("auto")
            clip["landmarks"] = detected_landmarks(self._detector, clip["image"], clip["landmarks"])
        return clip


WRONG_FACE_NME = 0.5  # a detection this far from the true points (in eye distances) found something else


def detector_points(detector, image: np.ndarray, truth: np.ndarray) -> np.ndarray | None:
    """The detector's 68 points on an (H, W, 3) uint8 frame, or None where it finds no face or
    another one than the true points (`truth`, (68, 2)) outline."""
    faces = detector.detect(image)
    if not faces:
        return None
    points = np.asarray(faces[0].landmarks, np.float32)
    eyes = np.linalg.norm(truth[36] - truth[45])
    return points if np.linalg.norm(points - truth, axis=1).mean() <= WRONG_FACE_NME * eyes else None


def detected_landmarks(detector, images: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """(K, 68, 2) points of a clip's (K, 3, S, S) uint8 frames: the detector's where it finds the
    face, ``fallback``'s elsewhere."""
    out = fallback.clone()
    for k, frame in enumerate(images.permute(0, 2, 3, 1).numpy()):
        points = detector_points(detector, np.ascontiguousarray(frame), fallback[k].numpy())
        if points is not None:
            out[k] = torch.from_numpy(points)
    return out


# ------------------------------------------------------------------------------ sampling


def sample_expression(rng: np.random.Generator, names: list[str], prob: float) -> np.ndarray:
    """Sparse blendshape weights in [0, 1], left/right pairs mostly moving together."""
    weights = np.where(rng.random(len(names)) < prob, rng.uniform(0, 1, len(names)) ** 1.5, 0.0)
    index = {n: i for i, n in enumerate(names)}
    for i, name in enumerate(names):
        twin = index.get(name[:-2] + "_R") if name.endswith("_L") else None
        if twin is not None and rng.random() < 0.7:
            weights[twin] = np.clip(weights[i] * rng.uniform(0.7, 1.3), 0, 1)
    if "jawOpen" in index and rng.random() < 0.3:
        weights[index["jawOpen"]] = rng.uniform(0, 0.6)
    return weights.astype(np.float32)


def sample_light(rng: np.random.Generator) -> torch.Tensor:
    """(9, 3) SH: ambient plus one directional light, slightly tinted."""
    tint = np.clip(rng.normal(1, 0.06, 3), 0.8, 1.2)
    settings = LightSettings(
        azimuth_deg=rng.uniform(-90, 90),
        elevation_deg=rng.uniform(-30, 60),
        intensity=rng.uniform(0.1, 0.8),
        ambient=rng.uniform(0.35, 0.85),
        color=tuple(float(c) for c in tint / tint.mean()),
    )
    return settings_to_sh(settings)[0]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """HxWx3 float background: flat, gradient or blotchy, with a few soft shapes."""
    kind = rng.integers(3)
    colour = rng.uniform(0.05, 0.95, 3).astype(np.float32)
    if kind == 0:
        bg = np.broadcast_to(colour, (size, size, 3)).copy()
    elif kind == 1:
        ramp = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        bg = colour * (1 - ramp) + rng.uniform(0.05, 0.95, 3).astype(np.float32) * ramp
        bg = np.broadcast_to(bg, (size, size, 3)).copy()
    else:
        bg = np.clip(colour + smooth_noise(rng, size, int(rng.integers(3, 12)), 3) * 0.3, 0, 1)
    for _ in range(rng.integers(0, 4)):
        centre = tuple(int(c) for c in rng.uniform(0, size, 2))
        axes = tuple(int(a) for a in rng.uniform(size / 10, size / 3, 2))
        cv2.ellipse(bg, centre, axes, rng.uniform(0, 180), 0, 360, rng.uniform(0, 1, 3).tolist(), -1)
    return cv2.GaussianBlur(bg, (0, 0), size / 200)


def head_outline(params: FaceParams, size: int) -> np.ndarray:
    """Per frame: head centre (x, y) in pixels, half axes (cm scaled to pixels) and roll (degrees)."""
    centre = torch.tensor([[[0.0, 1.0, -4.5]]]).expand(params.batch_size, 1, 3)
    ndc = project(to_camera(centre, params.rotation), params.scale, params.translation)[:, 0, :2]
    px = ndc_to_pixels(ndc, size)
    unit = params.scale[:, 0] * size / 2  # pixels per cm
    roll = torch.rad2deg(params.rotation[:, 2])
    return torch.stack([px[:, 0], px[:, 1], unit * 8.5, unit * 11.5, -roll], 1).numpy()


def head_style(rng: np.random.Generator) -> dict:
    """What stays the same over a clip: hair colour and extent, iris colour, skin shade of the head."""
    return {
        "hair": (rng.uniform(0.02, 0.5) * np.array([1.0, 0.8, 0.6]) * rng.uniform(0.8, 1.2, 3)).tolist()
        if rng.random() < 0.8
        else None,
        "grow": rng.uniform(1.02, 1.15),
        "sweep": rng.uniform(-15, 15),
        "iris": (np.array([0.25, 0.15, 0.08]) * rng.uniform(0.3, 1.4)).clip(0, 1).tolist()
        if rng.random() < 0.8
        else rng.uniform(0.2, 0.5, 3).tolist(),
        "shade": rng.uniform(0.6, 0.95),
    }


def head_underlay(
    bg: np.ndarray, outline: np.ndarray, landmarks: np.ndarray, skin: np.ndarray, style: dict
) -> np.ndarray:
    """Paint head, neck, hair, eyes and mouth behind the face mesh (which has holes there)."""
    size = bg.shape[0]
    out = bg.copy()
    cx, cy, half_w, half_h, angle = (float(v) for v in outline)
    shade = (skin * style["shade"]).tolist()
    neck = cv2.ellipse2Poly(
        (int(cx), int(cy + half_h * 0.9)), (int(half_w * 0.6), int(half_h * 0.9)), int(angle), 0, 360, 10
    )
    cv2.fillPoly(out, [neck], shade)
    cv2.ellipse(out, (int(cx), int(cy)), (int(half_w), int(half_h)), angle, 0, 360, shade, -1)
    if style["hair"] is not None:
        grow, sweep = style["grow"], style["sweep"]
        cv2.ellipse(
            out,
            (int(cx), int(cy)),
            (int(half_w * grow), int(half_h * grow)),
            angle,
            180 - abs(sweep),
            360 + sweep,
            style["hair"],
            -1,
        )
    pts = lambda idx: np.round(landmarks[idx] * 16).astype(np.int32)  # noqa: E731
    for eye in (slice(36, 42), slice(42, 48)):
        cv2.fillPoly(out, [pts(eye)], (0.78, 0.74, 0.72), cv2.LINE_AA, shift=4)
        centre = landmarks[eye].mean(0)
        radius = np.linalg.norm(landmarks[eye][3] - landmarks[eye][0]) * 0.22
        cv2.circle(
            out, tuple(int(v * 16) for v in centre), int(radius * 16), style["iris"], -1, cv2.LINE_AA, 4
        )
        cv2.circle(
            out, tuple(int(v * 16) for v in centre), int(radius * 8), (0.02, 0.02, 0.02), -1, cv2.LINE_AA, 4
        )
    cv2.fillPoly(out, [pts(slice(60, 68))], (0.25, 0.08, 0.08), cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(out, (0, 0), max(size / 256, 0.5))


# ------------------------------------------------------------------------------ rendering


def _poses(rng, cfg: SyntheticConfig, frames: int) -> np.ndarray:
    start = rng.normal(0, [cfg.pitch_deg, cfg.yaw_deg, cfg.roll_deg]).clip(-60, 60)
    drift = rng.normal(0, cfg.motion_deg, 3) * [0.5, 1.0, 0.3]
    steps = np.linspace(0, 1, frames)[:, None] if frames > 1 else np.zeros((1, 1))
    return np.radians(start + steps * drift).astype(np.float32)


def sample_clip_params(rng: np.random.Generator, model: FaceModel, cfg: SyntheticConfig) -> FaceParams:
    """Parameters of one clip in crop NDC (before framing): identity fixed, the rest drifting."""
    k = cfg.frames
    identity = torch.from_numpy(rng.normal(0, cfg.identity_std, model.n_identity).astype(np.float32))
    e0, e1 = (sample_expression(rng, model.expression_names, cfg.expression_prob) for _ in range(2))
    mix = np.linspace(0, 1, k)[:, None] if k > 1 else np.zeros((1, 1))
    expression = torch.from_numpy((e0 * (1 - mix) + e1 * mix).astype(np.float32))
    light = sample_light(rng)
    light = light[None] * torch.from_numpy(rng.normal(1, 0.03, (k, 1, 1)).astype(np.float32))
    albedo = torch.from_numpy(procedural_albedo(rng, model, cfg.texture_size))
    return FaceParams(
        rotation=torch.from_numpy(_poses(rng, cfg, k)),
        translation=torch.zeros(k, 2),
        scale=torch.ones(k, 1),
        identity=identity.expand(k, -1).contiguous(),
        expression=expression,
        albedo=albedo.expand(k, -1, -1, -1),  # one map shared by the frames
        light=light,
    )


def frame_params(rng, params: FaceParams, model: FaceModel, cfg: SyntheticConfig) -> FaceParams:
    """Place the faces in their crops as the detector + cropper would, plus detector jitter."""
    params = params.replace(scale=params.scale * 0.025)  # the 20 cm face spans a quarter of the virtual image
    _, _, ndc = params.geometry(model)
    params = frame_in_crop(params, model.landmark_vertices(ndc, params.rotation)[..., :2])
    jitter = torch.from_numpy(rng.normal(0, cfg.jitter, (params.batch_size, 3)).astype(np.float32))
    return params.replace(
        scale=params.scale * (1 + jitter[:, 2:] * 0.5), translation=params.translation + jitter[:, :2]
    )


def render_clip(rng: np.random.Generator, model: FaceModel, renderer: Renderer, cfg: SyntheticConfig) -> dict:
    """One synthetic clip with its ground truth (numpy/torch arrays, frames first)."""
    params = frame_params(rng, sample_clip_params(rng, model, cfg), model, cfg)
    size, big = cfg.image_size, cfg.image_size * cfg.supersample
    _, cam, ndc = params.geometry(model)
    out = renderer.render(cam, ndc, params.albedo, params.light, big)
    landmarks_ndc = model.landmark_vertices(ndc, params.rotation)[..., :2]
    landmarks = ndc_to_pixels(landmarks_ndc, size)
    skin = params.albedo[0, :, cfg.texture_size // 2, cfg.texture_size // 2].numpy()
    bg = background(rng, big)
    shading_mean = float(out.shading.sum() / out.mask.sum().clamp_min(1) / 3)
    images = []
    outlines, style = head_outline(params, big), head_style(rng)
    big_landmarks = ndc_to_pixels(landmarks_ndc, big).numpy()
    for i in range(params.batch_size):
        under = head_underlay(bg, outlines[i], big_landmarks[i], skin * min(shading_mean, 1.2), style)
        under = torch.from_numpy(under).permute(2, 0, 1)
        images.append(out.image[i].clamp(0, 1) * out.mask[i] + under * (1 - out.mask[i]))
    image = F.interpolate(torch.stack(images), size=(size, size), mode="area")
    mask = F.interpolate(out.mask, size=(size, size), mode="area")
    noise = rng.normal(0, cfg.landmark_noise_px, landmarks.shape).astype(np.float32)
    clip = {
        "image": (image.clamp(0, 1) * 255 + 0.5).byte(),
        "mask": mask,  # (K, 1, S, S) float: the anti-aliased coverage
        "landmarks": landmarks + torch.from_numpy(noise),
        "landmarks_true": landmarks,
        "params": params,
    }
    if cfg.with_maps:
        exact = renderer.render(cam, ndc, params.albedo, params.light, size)
        clip.update(depth=exact.depth, normals=exact.normals, mask_exact=exact.mask, shading=exact.shading)
    return clip
