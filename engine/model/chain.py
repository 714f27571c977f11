"""The conditional estimation chain: image -> viewpoint -> shape -> reflectance -> light (FaceParams).

Step by step (DESIGN.md section 1):
1. f_v sees the crop I and gives the viewpoint v.
2. f_s sees I warped by the inverse 2D similarity (roll, scale, translation) of v: upright, centred.
3. f_r sees T, the crop unwrapped into UV space with the shape and viewpoint, and its visibility.
4. f_l sees I, T and the albedo A.
With ``conditional=False`` (the paper's baseline) every estimator sees only I.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from engine.camera import project, to_camera
from engine.config_check import config_problem
from engine.errors import WeightsError
from engine.facemodel import FaceModel
from engine.model.fit import LandmarkFit, fit_landmarks, split_points
from engine.model.networks import IlluminationNet, ReflectanceNet, ShapeNet, ViewpointNet
from engine.params import FaceParams
from engine.render.delight import delight
from engine.render.uv import unwrap_texture, uv_normals
from engine.sh import ambient_light

FORMAT = "cest-v1"
EXPRESSION_BIAS = -3.0  # sigmoid(-3) ~ 0.05: an untrained shape net predicts a near-neutral face
EXPRESSION_FLOOR = 0.0474  # sigmoid(EXPRESSION_BIAS): where a fitted 0 starts, as without the fit


@dataclass
class CestConfig:
    conditional: bool = True
    image_size: int = 128  # network input crop
    texture_size: int = 64  # albedo UV map
    width: int = 32  # base channel count of the encoders
    features: int = 256  # encoder feature vector
    n_identity: int = 80
    n_expression: int = 53
    # The mean face as engine.crop frames a face: its landmarks' bounding box (14.3 cm wide)
    # spans 75% of the crop (0.1045 NDC per cm) and is centred (the landmarks' centre is at y = -1.04 cm).
    scale_init: float = 0.1045
    translation_init: tuple[float, float] = (0.0, -0.109)
    detach_conditioning: bool = True  # no gradient from a later estimator into an earlier one
    occlusion: bool = True  # depth-test the unwrap's visibility
    # Start viewpoint and shape from the landmark fit (engine/model/fit.py) of the frame's 68 detected
    # points; f_v and f_s then estimate corrections to it. The fit is one more factor the chain
    # conditions on; the unconditioned ablation gets it too.
    fit_prior: bool = False
    # f_r sees the unwrap de-lit by a least-squares SH light on the current geometry's normals
    # (engine/render/delight.py), not the unwrap itself, which it copies, light and all; f_l still
    # sees the unwrap as it is.
    delit_unwrap: bool = False
    # The fit also uses the 468 Face Mesh points (placed on the model by scripts/register_face_mesh.py)
    # when the landmarks carry them (B, 68 + 468, 2).
    dense_fit: bool = False

    @classmethod
    def from_dict(cls, values: dict) -> CestConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(values)
        if "translation_init" in values:
            values["translation_init"] = tuple(values["translation_init"])
        return cls(**values)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["translation_init"] = list(self.translation_init)
        return values


@dataclass
class CestOutput:
    """The chain's result and the conditioning it built on the way (for losses and pictures)."""

    params: FaceParams
    aligned: Tensor | None  # (B, 3, S, S) view-aligned crop seen by f_s
    texture: Tensor | None  # (B, 3, T, T) unwrapped image seen by f_r
    visibility: Tensor | None  # (B, 1, T, T)


@dataclass
class GeometryEstimate:
    """The viewpoint and shape (f_v, f_s) of crops, with what f_r and f_l condition on."""

    image: Tensor  # (B, 3, S, S) crops in [0, 1]
    x: Tensor  # the same in [-1, 1], as the encoders see them
    rotation: Tensor
    translation: Tensor
    scale: Tensor
    identity: Tensor
    expression: Tensor
    aligned: Tensor | None  # the view-aligned crop f_s saw (conditional chain)

    def params(self) -> FaceParams:
        """The geometry as FaceParams (no albedo or light yet)."""
        return FaceParams(
            self.rotation, self.translation, self.scale, self.identity, self.expression, None, None
        )


def align_image(image: Tensor, translation: Tensor, scale: Tensor, roll: Tensor, scale_init: float) -> Tensor:
    """Warp crops so a face at (roll, scale, translation) lands upright, centred, at ``scale_init``.

    ``ndc = (s/s0) Rot(roll) ndc_aligned + t`` in crop NDC (y down), which is what affine_grid
    wants: the source location of every output pixel.
    """
    a = scale.reshape(-1) / scale_init
    c, s = roll.cos() * a, roll.sin() * a
    theta = torch.stack(
        [torch.stack([c, s, translation[:, 0]], -1), torch.stack([-s, c, translation[:, 1]], -1)], 1
    )
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, "bilinear", "zeros", align_corners=False)


class CestModel(nn.Module):
    """The four estimators of CEST and the face model they explain images with."""

    def __init__(self, config: CestConfig | None = None, face_model: FaceModel | None = None):
        super().__init__()
        self.config = config = config or CestConfig()
        self.face_model = face_model or FaceModel.load()
        _check_face_model(config, self.face_model)
        s, t, w, f = config.image_size, config.texture_size, config.width, config.features
        self.viewpoint = ViewpointNet(s, w, f)
        self.shape = ShapeNet(s, w, f, config.n_identity + config.n_expression)
        self.reflectance = ReflectanceNet(config.conditional, s, t, w, f)
        self.illumination = IlluminationNet(config.conditional, s, t, w, f)

    # -------------------------------------------------------------------------------- forward

    def forward(self, image: Tensor, landmarks: Tensor | None = None) -> FaceParams:
        """(B, 3, S, S) crops in [0, 1] (and (B, 68, 2) landmarks in crop NDC) -> FaceParams."""
        return self.estimate(image, landmarks).params

    def estimate(
        self, image: Tensor, landmarks: Tensor | None = None, albedo: Tensor | None = None
    ) -> CestOutput:
        """(B, 3, S, S) crops in [0, 1] (and landmarks) -> the four factors. ``albedo`` (B, 3, T, T):
        the reflectance, known already (an earlier frame of the same person); f_r is skipped and f_l
        conditions on it."""
        return self.estimate_appearance(self.estimate_geometry(image, landmarks), albedo)

    def estimate_geometry(self, image: Tensor, landmarks: Tensor | None = None) -> GeometryEstimate:
        """The chain's first half: f_v, then f_s (a video runs the second half on another thread)."""
        cfg = self.config
        if image.shape[-1] != cfg.image_size or image.shape[-2] != cfg.image_size:
            raise ValueError(
                f"expected {cfg.image_size}x{cfg.image_size} crops, got {tuple(image.shape[-2:])}"
            )
        x = image * 2 - 1
        start = self._fit_start(landmarks, image.shape[0]) if cfg.fit_prior else None
        rotation, translation, scale = self._viewpoint(x, start)
        aligned = None
        if cfg.conditional:
            cond = self._conditioning
            aligned = align_image(x, cond(translation), cond(scale), cond(rotation[:, 2]), cfg.scale_init)
        identity, expression = self._shape(aligned if cfg.conditional else x, start)
        return GeometryEstimate(image, x, rotation, translation, scale, identity, expression, aligned)

    def estimate_appearance(self, geometry: GeometryEstimate, albedo: Tensor | None = None) -> CestOutput:
        """The chain's second half, f_r then f_l, on ``geometry`` (see :meth:`estimate`)."""
        cfg, g = self.config, geometry
        if albedo is not None and albedo.shape[-2:] != (cfg.texture_size, cfg.texture_size):
            raise ValueError(
                f"a known albedo must be {cfg.texture_size} px square, got {tuple(albedo.shape)}"
            )
        texture = visibility = None
        if cfg.conditional:
            cond = self._conditioning
            verts = self.face_model.vertices(cond(g.identity), cond(g.expression))
            cam = to_camera(verts, cond(g.rotation))
            ndc = project(cam, cond(g.scale), cond(g.translation))
            texture, visibility = unwrap_texture(
                g.image, ndc, cam, self.face_model, cfg.texture_size, cfg.occlusion
            )
        if albedo is None:
            delit = cfg.delit_unwrap and cfg.conditional
            seen = self._delit(texture, cam, visibility) if delit else texture
            albedo = torch.sigmoid(self.reflectance(g.x, seen, visibility))
        if cfg.conditional:
            light_raw = self.illumination(g.x, texture, self._conditioning(albedo), visibility)
        else:
            light_raw = self.illumination(g.x)
        light = ambient_light(g.x.shape[0], device=g.x.device) + light_raw.reshape(-1, 9, 3)
        params = g.params().replace(albedo=albedo, light=light)
        return CestOutput(params, g.aligned, texture, visibility)

    @torch.no_grad()
    def _delit(self, texture: Tensor, cam: Tensor, visibility: Tensor) -> Tensor:
        """The unwrap divided by the shading of its least-squares SH light (see ``delit_unwrap``)."""
        return delight(texture, uv_normals(self.face_model, cam, texture.shape[-1]), visibility)[0]

    def _conditioning(self, factor: Tensor) -> Tensor:
        """An earlier estimator's output as a later one sees it (without its gradient, by default)."""
        return factor.detach() if self.config.detach_conditioning else factor

    def _fit_start(self, landmarks: Tensor | None, batch: int) -> LandmarkFit:
        if landmarks is None or landmarks.shape[0] != batch or landmarks.shape[1:] not in ((68, 2), (536, 2)):
            got = None if landmarks is None else tuple(landmarks.shape)
            raise ValueError(
                f"these weights start from the landmark fit: give ({batch}, 68, 2) landmarks "
                f"(or 68 + 468 with the Face Mesh points) in crop NDC, got {got}"
            )
        ibug, dense = split_points(landmarks.float())
        return fit_landmarks(self.face_model, ibug, dense_ndc=dense if self.config.dense_fit else None)

    def _viewpoint(self, x: Tensor, start: LandmarkFit | None) -> tuple[Tensor, Tensor, Tensor]:
        raw = self.viewpoint(x)
        if start is not None:
            return (
                raw[:, :3] + start.rotation,
                raw[:, 3:5] + start.translation,
                start.scale * torch.exp(raw[:, 5:6]),
            )
        translation = raw[:, 3:5] + raw.new_tensor(self.config.translation_init)
        scale = self.config.scale_init * torch.exp(raw[:, 5:6])
        return raw[:, :3], translation, scale

    def _shape(self, x: Tensor, start: LandmarkFit | None) -> tuple[Tensor, Tensor]:
        raw = self.shape(x)
        n_id = self.config.n_identity
        identity, expression = raw[:, :n_id], raw[:, n_id:] + EXPRESSION_BIAS
        if start is not None:
            identity = identity + start.identity[:, :n_id]
            expression = raw[:, n_id:] + torch.logit(
                start.expression.clamp(EXPRESSION_FLOOR, 1 - EXPRESSION_FLOOR)
            )
        return identity, torch.sigmoid(expression)

    # ---------------------------------------------------------------------------- save / load

    def save(self, path: str | Path, extra_metadata: dict | None = None, half: bool = False) -> None:
        """Weights as safetensors, the config (JSON) in the metadata; ``half`` stores float16
        (half the size; loading converts back to float32)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if half:
            tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        metadata = {"format": FORMAT, "config": json.dumps(self.config.to_dict())}
        metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
        # Serialised in memory, written with Python's I/O: a full disk then raises OSError(ENOSPC),
        # where safetensors' own writer raises an error callers cannot tell from a bad tensor.
        Path(path).write_bytes(safetensors_bytes(tensors, metadata=metadata))

    @classmethod
    def load(
        cls,
        path: str | Path,
        config: CestConfig | None = None,
        face_model: FaceModel | None = None,
        device: str | torch.device = "cpu",
    ) -> CestModel:
        """Load weights saved by :meth:`save`; with ``config``, insist the file was made for it."""
        stored, tensors = read_weights(path)
        if config is not None:
            mismatch = config_mismatch(config, stored)
            if mismatch:
                raise WeightsError(f"{path}: weights were trained with another model config: {mismatch}")
        model = cls(stored, face_model)
        try:
            model.load_state_dict(tensors)
        except RuntimeError as err:
            raise WeightsError(f"{path}: tensors do not fit the model config ({err})") from err
        return model.to(device).eval()

    def to(self, *args, **kwargs) -> CestModel:
        module = super().to(*args, **kwargs)
        device = next(self.parameters()).device
        if self.face_model.device != device:
            self.face_model = self.face_model.to(device)
        return module


def read_weights(path: str | Path) -> tuple[CestConfig, dict[str, Tensor]]:
    """The config and tensors of a CEST weights file, with clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:  # safetensors raises its own error types for foreign files
        raise WeightsError(f"{path} is not a safetensors weights file ({err})") from err
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise WeightsError(f"{path} holds no CEST model (metadata format {metadata.get('format')!r})")
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise WeightsError(
            f"{path}: tensor {bad} holds NaN or infinite values (a diverged or damaged "
            f"training); these weights cannot reconstruct a face"
        )
    return _stored_config(path, metadata["config"]), tensors


def _stored_config(path: Path, text: str) -> CestConfig:
    """The model config in a weights file's metadata, checked key by key (type and range)."""
    try:
        values = json.loads(text)
        if not isinstance(values, dict):
            raise TypeError(f"a mapping was expected, got {type(values).__name__}")
        config = CestConfig.from_dict(values)
    except (ValueError, TypeError) as err:
        raise WeightsError(f"{path}: unreadable model config ({err})") from err
    problem = config_problem(config, "model.")
    if problem:
        raise WeightsError(f"{path}: bad model config in the metadata: {problem}")
    return config


def config_mismatch(expected: CestConfig, stored: CestConfig) -> str:
    """'key: expected X, file has Y' for every differing field ('' when they agree)."""
    a, b = expected.to_dict(), stored.to_dict()
    return "; ".join(f"{k}: expected {a[k]!r}, file has {b[k]!r}" for k in a if a[k] != b[k])


def _check_face_model(config: CestConfig, model: FaceModel) -> None:
    if (config.n_identity, config.n_expression) != (model.n_identity, model.n_expression):
        raise WeightsError(
            f"model config wants {config.n_identity} identity / {config.n_expression} expression "
            f"coefficients but the face model has {model.n_identity} / {model.n_expression}"
        )
