"""Headless maths behind the app's live edits: light, reflectance swap/blend, pose, view modes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from engine.camera import project, to_camera
from engine.facemodel import FaceModel
from engine.io.mesh import MeshData
from engine.lighting import LightSettings, settings_to_sh
from engine.params import FaceParams
from engine.reconstruct.expressions import with_expression
from engine.reconstruct.reconstructor import to_uint8
from engine.reconstruct.views import depth_to_grey, normalised_shading, shading_peak
from engine.render import Renderer, RenderOutput, sample_texture, vertex_normals
from engine.render.uv import uv_layout
from engine.sh import SH_CONST, sh_basis, sh_shading

VIEWS = ("render", "albedo", "shading", "normals")

# settings_to_sh's per-band scale of a delta light (see engine.lighting)
_BAND1 = SH_CONST[1] * 3 / (2 * math.pi)


# ----------------------------------------------------------------------------------- light


def light_to_settings(light: torch.Tensor) -> LightSettings:
    """The :class:`LightSettings` closest to an SH light (1, 9, 3) or (9, 3): the inverse of
    :func:`engine.lighting.settings_to_sh` for the lights it makes, an estimate for others.

    Direction and intensity come from band 1 of the mean channel, ambient from band 0 minus the
    directional light's share, colour from band 0's channel ratios (brightest channel = 1).
    """
    light = light.detach().float().reshape(9, 3).cpu()
    dc = light[0].clamp_min(1e-6)
    color = dc / dc.max()
    grey = (light * color).sum(-1) / (color * color).sum()  # least squares: light ≈ grey ⊗ color
    vector = grey[1:4] / _BAND1  # intensity * direction
    intensity = float(vector.norm())
    if intensity < 1e-6:
        azimuth = elevation = 0.0
    else:
        x, y, z = (vector / intensity).tolist()
        elevation = math.degrees(math.asin(max(-1.0, min(1.0, y))))
        azimuth = math.degrees(math.atan2(x, z))
    ambient = float((grey[0] - intensity * SH_CONST[0] * math.pi) * SH_CONST[0])
    return LightSettings(azimuth, elevation, intensity, ambient, tuple(round(c, 4) for c in color.tolist()))


def light_of(edits: Edits, estimated: torch.Tensor) -> torch.Tensor:
    """The (1, 9, 3) SH light an edit asks for: the estimated one, a borrowed one, or from settings."""
    if edits.light is None:
        return estimated
    if isinstance(edits.light, LightSettings):
        return settings_to_sh(edits.light).to(estimated)
    return torch.as_tensor(edits.light).reshape(1, 9, 3).to(estimated)


# ------------------------------------------------------------------------------ reflectance


def blend_albedo(albedo: torch.Tensor, other: torch.Tensor | None, amount: float) -> torch.Tensor:
    """``(1 - amount) * albedo + amount * other`` (amount 1 = a full swap), ``other`` resized to fit."""
    if other is None or amount <= 0:
        return albedo
    other = other.to(albedo)
    if other.shape[-2:] != albedo.shape[-2:]:
        other = F.interpolate(
            other,
            size=albedo.shape[-2:],
            mode="bilinear",
            align_corners=False,
            antialias=other.shape[-1] > albedo.shape[-1],
        )
    amount = float(min(max(amount, 0.0), 1.0))
    return torch.lerp(albedo, other.expand_as(albedo), amount)


# ------------------------------------------------------------------------------------ pose


def rotation_degrees(params: FaceParams) -> tuple[float, float, float]:
    """(pitch, yaw, roll) of the first face, in degrees."""
    return tuple(math.degrees(a) for a in params.rotation[0].tolist())


def posed(params: FaceParams, rotation_deg: tuple[float, float, float] | None) -> FaceParams:
    """The face turned to (pitch, yaw, roll) degrees (None keeps the estimated viewpoint)."""
    if rotation_deg is None:
        return params
    rotation = torch.tensor([[math.radians(a) for a in rotation_deg]], dtype=params.rotation.dtype)
    return params.replace(rotation=rotation.to(params.rotation.device).expand_as(params.rotation))


# ------------------------------------------------------------------------------------ edits


@dataclass
class Edits:
    """What the controls ask for. Every field's default means "as reconstructed"."""

    light: LightSettings | torch.Tensor | None = None  # None: the estimated light; a tensor: borrowed
    other_albedo: torch.Tensor | None = None  # (1, 3, T, T) reflectance of another face
    blend: float = 0.0  # 0 = own reflectance, 1 = the other face's
    rotation: tuple[float, float, float] | None = None  # (pitch, yaw, roll) degrees; None = estimated
    expression: tuple[float, ...] | None = None  # every expression weight in [0, 1]; None = estimated
    view: str = "render"  # one of VIEWS
    composite: bool = True  # draw the 2D re-render over the photo crop (else over grey)


def apply_edits(params: FaceParams, edits: Edits) -> FaceParams:
    """The face's parameters with the edited light, reflectance, pose and expression."""
    return with_expression(posed(params, edits.rotation), edits.expression).replace(
        albedo=blend_albedo(params.albedo, edits.other_albedo, edits.blend),
        light=light_of(edits, params.light),
    )


# ------------------------------------------------------------------------------- the images


def texture_view(
    albedo: torch.Tensor, normals_uv: torch.Tensor, light: torch.Tensor, view: str
) -> torch.Tensor:
    """The viewport texture (1, 3, T, T): albedo x SH shading in UV space, or one factor of it.

    ``normals_uv`` are camera-space unit normals per texel (1, 3, T, T), 0 off the UV chart.
    """
    if view == "normals":
        return ((normals_uv + 1) / 2).clamp(0, 1)
    if view == "albedo":
        return albedo.clamp(0, 1)
    if normals_uv.shape[-1] != albedo.shape[-1]:
        normals_uv = F.normalize(
            F.interpolate(normals_uv, size=albedo.shape[-2:], mode="bilinear", align_corners=False),
            dim=1,
            eps=1e-12,
        )
    shading = sh_shading(normals_uv.permute(0, 2, 3, 1), light).permute(0, 3, 1, 2)
    if view == "shading":
        return shading.clamp(0, 1)
    if view == "render":
        return (albedo * shading).clamp(0, 1)
    raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")


def uv_normals(
    model: FaceModel, verts_cam: torch.Tensor, size: int, layout: tuple | None = None, incidence=None
) -> torch.Tensor:
    """Camera-space unit normals of (1, V, 3) vertices, per texel of a size x size UV map (1, 3, T, T).

    Texels off the UV chart get a zero normal (their shading is the light's ambient term).
    """
    corners, bary, _ = layout if layout is not None else uv_layout(model, size)
    normals = vertex_normals(verts_cam, model.faces, incidence)  # (1, V, 3)
    gathered = normals[:, corners]  # (1, T, T, 3, 3)
    per_texel = torch.einsum("tsk,btskc->bcts", bary.to(normals.dtype), gathered)
    return F.normalize(per_texel, dim=1, eps=1e-12)


@dataclass
class EditedFrame:
    """What the window shows for one edit state."""

    image: np.ndarray  # HxWx3 uint8: the 2D re-render (crop size)
    texture: np.ndarray  # TxTx3 uint8: the viewport texture, row 0 at v = 1
    vertices: np.ndarray  # (V, 3) float32 camera-space vertices in cm (the viewport's mesh)
    pose_changed: bool  # whether ``vertices`` differ from the previous frame's
    seconds: float = 0.0  # time this frame took to compute
    stats: dict = field(default_factory=dict)


class FaceEditor:
    """One face being edited: caches what a slider move does not change, so each move is cheap.

    ``params`` is the reconstruction (batch of one), ``crop`` the (1, 3, S, S) photo crop it came from
    (the 2D re-render's background), ``size`` the 2D re-render's side.

    Caches: per pose, the render's interpolants and the SH basis of every covered pixel and texel
    (so a new light is one (N, 9) x (9, 3) product); per reflectance, the albedo sampled at each
    pixel. A light move therefore costs two small matrix products and the image conversions.
    """

    def __init__(
        self,
        model: FaceModel,
        renderer: Renderer,
        params: FaceParams,
        crop: torch.Tensor | None = None,
        size: int = 256,
        texture_size: int | None = None,
    ):
        self.model, self.renderer = model, renderer
        self.device = model.device
        self.params = float_params(params.detach()).to(self.device)
        self.crop = crop.to(self.device) if crop is not None else None
        self.size = size
        self.texture_size = texture_size or params.albedo.shape[-1]
        self._layout = uv_layout(model, self.texture_size)
        self._incidence = getattr(renderer, "_incidence", None)
        self._verts = model.vertices(self.params.identity, self.params.expression)  # model space
        self._grey = torch.full((1, 3, size, size), 0.16, device=self.device)
        self._pose_key: object = object()  # no pose rendered yet
        self._expression_key: object = None  # self._verts hold the estimated expression
        self._albedo_key: object = object()
        self._cache: RenderOutput | None = None
        self._shading_peak: torch.Tensor | None = None  # per pose: see _estimated_shading_peak

    @property
    def estimated_rotation(self) -> tuple[float, float, float]:
        return rotation_degrees(self.params)

    @property
    def estimated_light(self) -> LightSettings:
        return light_to_settings(self.params.light)

    # -- caches

    def _geometry(self, rotation_deg, expression=None) -> bool:
        """Render the geometry for a pose and expression unless cached; True when it changed."""
        key = tuple(
            None if v is None else tuple(round(float(a), 4) for a in v) for v in (rotation_deg, expression)
        )
        if key == self._pose_key and self._cache is not None:
            return False
        if key[1] != self._expression_key:
            shaped = with_expression(self.params, expression)
            self._verts = self.model.vertices(shaped.identity, shaped.expression)
            self._expression_key = key[1]
        params = posed(self.params, rotation_deg)
        verts_cam = to_camera(self._verts, params.rotation)
        ndc = project(verts_cam, params.scale, params.translation)
        self._cache = self.renderer.render(verts_cam, ndc, params.albedo, params.light, self.size)
        mask = self._cache.mask  # (1, 1, H, W)
        self._mask = mask
        self._basis_px = sh_basis(self._cache.normals.permute(0, 2, 3, 1)).reshape(1, -1, 9) * mask.reshape(
            1, -1, 1
        )
        self._normals_uv = uv_normals(self.model, verts_cam, self.texture_size, self._layout, self._incidence)
        covered = self._layout[2].to(mask.dtype).reshape(1, -1, 1)
        self._basis_uv = sh_basis(self._normals_uv.permute(0, 2, 3, 1)).reshape(1, -1, 9) * covered
        self._verts_cam = verts_cam
        self._pose_key = key
        self._albedo_key = object()  # the sampled albedo follows the pixels
        self._shading_peak = None
        return True

    def _albedo(self, edits: Edits) -> tuple[torch.Tensor, torch.Tensor]:
        """(albedo map (1, 3, T, T), albedo at each pixel (1, 3, H, W)) of the edited reflectance."""
        key = (id(edits.other_albedo), round(float(edits.blend), 4) if edits.other_albedo is not None else 0)
        if key != self._albedo_key:
            self._albedo_map = blend_albedo(self.params.albedo, edits.other_albedo, edits.blend)
            self._albedo_px = sample_texture(self._albedo_map, self._cache.uv) * self._mask
            self._albedo_key = key
        return self._albedo_map, self._albedo_px

    def _estimated_shading_peak(self) -> torch.Tensor:
        """What the Shading view shows white: the estimated light's brightest 1% in this pose (as in
        shading.png), whatever the edit, so a light edit still brightens or darkens the view."""
        if self._shading_peak is None:
            self._shading_peak = shading_peak(self._shading(self.params.light)[0], self._mask)
        return self._shading_peak

    def _shading(self, light: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SH shading at each pixel (1, 3, H, W) and texel (1, 3, T, T) for a (1, 9, 3) light."""
        h = w = self.size
        t = self.texture_size
        px = (self._basis_px @ light).transpose(1, 2).reshape(1, 3, h, w)
        uv = (self._basis_uv @ light).transpose(1, 2).reshape(1, 3, t, t)
        return px, uv

    # -- outputs

    @torch.no_grad()
    def frame(self, edits: Edits) -> EditedFrame:
        """Both images (and the vertices) for an edit state."""
        import time

        start = time.perf_counter()
        if edits.view not in VIEWS:
            raise ValueError(f"unknown view {edits.view!r}; choose one of {', '.join(VIEWS)}")
        changed = self._geometry(edits.rotation, edits.expression)
        albedo_map, albedo_px = self._albedo(edits)
        light = light_of(edits, self.params.light)
        mask = self._mask
        if edits.view == "normals":
            face, texture = (self._cache.normals + 1) / 2 * mask, (self._normals_uv + 1) / 2
        elif edits.view == "albedo":
            face, texture = albedo_px, albedo_map
        else:
            shading_px, shading_uv = self._shading(light)
            if edits.view == "shading":
                peak = self._estimated_shading_peak()
                face, texture = shading_px / peak, shading_uv / peak
            else:
                face, texture = albedo_px * shading_px, albedo_map * shading_uv
        background = (
            self.crop
            if (edits.composite and self.crop is not None and self.crop.shape[-1] == self.size)
            else self._grey
        )
        image = face + background * (1 - mask)
        return EditedFrame(
            image=to_uint8(image),
            texture=to_uint8(texture),
            vertices=self._verts_cam[0].cpu().numpy(),
            pose_changed=changed,
            seconds=time.perf_counter() - start,
        )

    def edited_params(self, edits: Edits) -> FaceParams:
        return apply_edits(self.params, edits)

    @torch.no_grad()
    def mesh(self, edits: Edits, bake_light: bool = False) -> MeshData:
        """The face as a textured mesh in model space (cm); the texture is the edited albedo or,
        with ``bake_light``, the viewport's lit texture."""
        self._geometry(edits.rotation, edits.expression)
        albedo, _ = self._albedo(edits)
        if bake_light:
            albedo = albedo * self._shading(light_of(edits, self.params.light))[1]
        faces = self.model.faces.cpu().numpy()
        return MeshData(self._verts[0].cpu().numpy(), faces, self.model.uvs.cpu().numpy(), to_uint8(albedo))

    @torch.no_grad()
    def maps(self, edits: Edits) -> dict[str, np.ndarray]:
        """Crop-size uint8 maps of the edited face (render over the photo, albedo, shading, normals,
        depth) and ``texture``, the lit UV texture the viewport shows."""
        maps = {}
        for view in VIEWS:
            frame = self.frame(
                Edits(**{**edits.__dict__, "view": view, "composite": view == "render" and edits.composite})
            )
            maps[view] = frame.image if view == "render" else frame.image * (self._mask_np()[..., None])
            if view == "render":
                maps["texture"] = frame.texture
        shading_px, _ = self._shading(light_of(edits, self.params.light))
        maps["shading"] = to_uint8(normalised_shading(shading_px, self._mask))  # as the CLI's shading.png
        maps["depth"] = depth_to_grey(self._cache.depth, self._cache.mask)
        return maps

    def _mask_np(self) -> np.ndarray:
        return self._mask[0, 0].cpu().numpy().astype(np.uint8)


def compact_params(params: FaceParams) -> FaceParams:
    """The parameters with the albedo map as uint8, for keeping many video frames in memory."""
    return params.replace(albedo=(params.albedo.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8))


def float_params(params: FaceParams) -> FaceParams:
    """Undo :func:`compact_params` (and half precision): a float32 albedo in [0, 1]."""
    albedo = params.albedo
    if albedo.dtype == torch.uint8:
        return params.replace(albedo=albedo.float() / 255)
    if albedo.dtype != torch.float32:
        return params.replace(albedo=albedo.float())
    return params
