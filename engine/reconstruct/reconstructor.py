"""Reconstructor: load the models once, then turn photos (or video frames) into FaceParams.

Two methods behind one interface:
- ``cest``: the trained CEST chain (viewpoint -> shape -> reflectance -> light).
- ``fit``: no trained weights; viewpoint and shape fitted to the 68 landmarks, reflectance
  unwrapped from the image and de-lit by an SH fit. Also the benchmark's baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.camera import pixels_to_ndc
from engine.crop import CropBox, crop_image, crop_params_from_landmarks, image_to_crop
from engine.detect import Detector, Face, NoFaceError, create_detector
from engine.facemodel import FaceModel
from engine.io.image import load_image
from engine.io.mesh import MeshData
from engine.model.chain import GeometryEstimate
from engine.model.fit import FitConfig, fit_landmarks, split_points
from engine.params import FaceParams
from engine.reconstruct.detail import add_image_detail
from engine.render import Renderer, RenderOutput
from engine.render.delight import delight
from engine.render.uv import pad_chart, symmetric_fill, unwrap_texture, uv_normals
from engine.resources import resources_root

CROP_SIZE = 256  # the crop the texture is unwrapped from; networks resize it to their input
TEXTURE_SIZE = 256
METHODS = ("cest", "fit")
DEFAULT_WEIGHTS = "weights/cest_default.safetensors"


def default_weights() -> Path | None:
    path = resources_root() / DEFAULT_WEIGHTS
    return path if path.exists() else None


@dataclass
class Reconstruction:
    """One reconstructed face: the input, where the face is, and its four factors."""

    image: np.ndarray  # HxWx3 uint8, the whole input
    face: Face  # detection in image pixels
    crop_box: CropBox
    crop: np.ndarray  # CROP_SIZE x CROP_SIZE x 3 uint8
    params: FaceParams  # batch of one, on the CPU
    method: str
    source: str = ""
    extras: dict = field(default_factory=dict)
    # what reconstruct_face(later=True) left for estimate_appearance: CEST's viewpoint and shape
    pending: GeometryEstimate | None = field(default=None, repr=False, compare=False)
    # the albedo is the person's from an earlier frame of a video (engine/reconstruct/person.py),
    # not estimated on this one
    albedo_reused: bool = False
    # the vertices of ``params``, decoded once for every output (Reconstructor.face_geometry)
    geometry: FaceGeometry | None = field(default=None, repr=False, compare=False)

    def crop_tensor(self) -> torch.Tensor:
        return image_tensor(self.crop)


@dataclass
class FaceGeometry:
    """A face's vertices decoded from its parameters once (DECA's "decode once"), then passed to
    every output: the mesh files, the renders and maps, a video's side-by-side frame.

    Each (B, V, 3), on the reconstructor's device: model space in cm (expression included), camera
    space, and crop NDC (the projection).
    """

    params: FaceParams  # what they were decoded from
    face_model: FaceModel
    model: torch.Tensor
    camera: torch.Tensor
    ndc: torch.Tensor


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) float in [0, 1] -> HxWxC uint8."""
    image = image[0] if image.dim() == 4 else image
    return (image.detach().clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).cpu().numpy()


class Reconstructor:
    """Reconstructs faces with one method; holds the face model, renderer, detector and weights."""

    def __init__(
        self,
        method: str = "auto",
        weights: str | Path | None = None,
        device: str = "cpu",
        detector: str | Detector = "auto",
        detail: bool = True,
    ):
        self.device = torch.device(device)
        self.model = FaceModel.load(device=self.device)
        self.renderer = Renderer(self.model.faces, self.model.uvs).to(self.device)
        given = not isinstance(detector, str)  # a detector object (its name, or a backend name)
        self._detector_name = getattr(detector, "name", "auto") if given else detector
        self.detail = detail  # CEST: add the photo's fine detail to the network's albedo
        self.fit_config = FitConfig()
        # The fit also uses the 468 Face Mesh points where the detector gives them. Off: measured on
        # 337 AFW faces and 290 LFW photos it did not help (weights README, "What did not work").
        self.dense_fit = False
        self._detector = detector if given else None
        self.method, self.weights = self._choose_method(method, weights)
        self.network = self._load_network() if self.method == "cest" else None

    def _choose_method(self, method: str, weights) -> tuple[str, Path | None]:
        if method not in (*METHODS, "auto"):
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        weights = Path(weights) if weights else default_weights()
        if method == "auto":
            method = "cest" if weights else "fit"
        if method == "cest" and weights is None:
            raise FileNotFoundError("no CEST weights found: pass --weights or use --method fit")
        return method, weights if method == "cest" else None

    def _load_network(self):
        from engine.model.chain import CestModel

        network = CestModel.load(self.weights, face_model=self.model).to(self.device)
        return network.eval()

    @property
    def loaded_detector(self) -> Detector | None:
        """The detector if it was made already (another Reconstructor can share it), else None."""
        return self._detector

    @property
    def detector(self):
        if self._detector is None:
            self._detector = create_detector(self._detector_name)
        return self._detector

    # ------------------------------------------------------------------ images

    def reconstruct(self, image: np.ndarray | str | Path, all_faces: bool = False):
        """Reconstruct the largest face of an image (array or path); a list with ``all_faces``."""
        source = str(image) if isinstance(image, (str, Path)) else ""
        if source:
            image = load_image(image)
        thorough = all_faces and hasattr(self.detector, "thorough_levels")  # search finer for small faces
        faces = self.detector.detect(image, thorough=True) if thorough else self.detector.detect(image)
        if not faces:
            raise NoFaceError(
                f"{source or 'image'}: no face found (it may be too small: faces under "
                f"about 1/15 of the image's long side can be missed)"
            )
        recons = [self.reconstruct_face(image, face, source) for face in (faces if all_faces else faces[:1])]
        return recons if all_faces else recons[0]

    def reconstruct_face(
        self,
        image: np.ndarray,
        face: Face,
        source: str = "",
        crop_box: CropBox | None = None,
        later: bool = False,
    ) -> Reconstruction:
        """``later``: CEST's reflectance and light and the photo's fine detail are left to
        :meth:`estimate_appearance` and :meth:`add_detail` (a video runs them on another thread,
        while the next frame's viewpoint and shape are estimated)."""
        box = crop_box or crop_params_from_landmarks(face.landmarks)
        crop = crop_image(image, box, CROP_SIZE)
        lm = torch.as_tensor(self._fit_points(face, box), dtype=torch.float32)[None]
        if later and self.method == "cest":
            geometry = self._estimate_geometry(image_tensor(crop), lm)
            recon = Reconstruction(image, face, box, crop, geometry.params().to("cpu"), self.method, source)
            recon.pending = geometry
            if self.detail:
                recon.extras["detail_pending"] = torch.ones(())
            return recon
        params, extras = self.estimate_with_extras(image_tensor(crop), lm)
        extras = {k: v.cpu() for k, v in extras.items()}
        return Reconstruction(image, face, box, crop, params.to("cpu"), self.method, source, extras)

    @torch.no_grad()
    def _estimate_geometry(self, crops: torch.Tensor, landmarks_px: torch.Tensor) -> GeometryEstimate:
        return self.network.estimate_geometry(*self._network_inputs(crops.to(self.device), landmarks_px))

    def _network_inputs(
        self, crops: torch.Tensor, landmarks_px: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops (on the device) at the network's input size, and the landmarks in crop NDC."""
        size = self.network.config.image_size
        landmarks = pixels_to_ndc(landmarks_px.to(self.device), crops.shape[-1])
        return F.interpolate(crops, size=(size, size), mode="area"), landmarks

    @torch.no_grad()
    def estimate_appearance(self, recon: Reconstruction, albedo: torch.Tensor | None = None) -> None:
        """Estimate what ``reconstruct_face(later=True)`` left out (in place; nothing if it left
        nothing): the reflectance, or with ``albedo`` (the network's, of an earlier frame of the same
        person) that one reused, then the light conditioned on it."""
        if recon.pending is None:
            return
        known = None if albedo is None else albedo.to(self.device)
        out = self.network.estimate_appearance(recon.pending, known).params
        recon.params = recon.params.replace(albedo=out.albedo.cpu(), light=out.light.cpu())
        recon.pending, recon.albedo_reused = None, known is not None

    def _fit_points(self, face: Face, box: CropBox) -> np.ndarray:
        """Crop-pixel points for the estimate: the 68, then the 468 Face Mesh points if known."""
        points = face.landmarks
        if self.dense_fit and face.mesh is not None and self.model.has_dense:
            points = np.concatenate([points, face.mesh[:, :2]])
        return image_to_crop(points, box, CROP_SIZE)

    @torch.no_grad()
    def add_detail(self, recon: Reconstruction) -> Reconstruction:
        """Put in the fine detail ``reconstruct_face(later=True)`` left out (in place)."""
        if recon.extras.pop("detail_pending", None) is not None:
            crops = recon.crop_tensor().to(self.device)
            params, visibility = add_image_detail(
                recon.params.to(self.device), crops, self.model, TEXTURE_SIZE
            )
            recon.params, recon.extras["visibility"] = params.to("cpu"), visibility.cpu()
        return recon

    def estimate(self, crops: torch.Tensor, landmarks_px: torch.Tensor) -> FaceParams:
        """(B, 3, CROP_SIZE, CROP_SIZE) crops and (B, 68, 2) crop-pixel landmarks (or 68 + 468 with the
        Face Mesh points) -> FaceParams."""
        return self.estimate_with_extras(crops, landmarks_px)[0]

    @torch.no_grad()
    def estimate_with_extras(self, crops: torch.Tensor, landmarks_px: torch.Tensor, detail: bool = True):
        """FaceParams and a dict of by-products (the fit's texture ``visibility``); ``detail``
        False leaves the photo's detail out of the CEST albedo whatever ``self.detail`` says."""
        crops = crops.to(self.device)
        if self.method == "cest":
            params = self.network(*self._network_inputs(crops, landmarks_px))
            if not (self.detail and detail):
                return params, {}
            params, visibility = add_image_detail(params, crops, self.model, TEXTURE_SIZE)
            return params, {"visibility": visibility}
        return self._fit(crops, landmarks_px.to(self.device))

    def _fit(self, crops: torch.Tensor, landmarks_px: torch.Tensor):
        ibug, dense = split_points(pixels_to_ndc(landmarks_px, crops.shape[-1]))
        fit = fit_landmarks(self.model, ibug, self.fit_config, dense)
        params = FaceParams(
            fit.rotation, fit.translation, fit.scale, fit.identity, fit.expression, albedo=None, light=None
        )
        _, cam, ndc = params.geometry(self.model)
        texture, visibility = unwrap_texture(crops, ndc, cam, self.model, TEXTURE_SIZE)
        albedo, light = delight(texture, uv_normals(self.model, cam, TEXTURE_SIZE), visibility)
        seen = torch.maximum(visibility, visibility.flip(-1)) > 0.05  # texels seen directly or mirrored
        albedo = pad_chart(symmetric_fill(albedo, visibility), seen, passes=24)
        return params.replace(albedo=albedo, light=light), {"visibility": visibility}

    # ------------------------------------------------------------------ outputs

    def geometry(self, params: FaceParams) -> FaceGeometry:
        """Decode ``params``' vertices (model space, camera space, NDC) on this device."""
        verts, cam, ndc = params.to(self.device).geometry(self.model)
        return FaceGeometry(params, self.model, verts, cam, ndc)

    def face_geometry(self, recon: Reconstruction) -> FaceGeometry:
        """``recon``'s geometry, decoded at its first use and kept on it until its params are replaced
        (a video frame's are, by the track's consensus): one decoding for all of its outputs."""
        cached = recon.geometry
        if cached is None or cached.params is not recon.params or cached.face_model is not self.model:
            recon.geometry = cached = self.geometry(recon.params)
        return cached

    def render(
        self,
        params: FaceParams,
        size: int,
        background: torch.Tensor | None = None,
        geometry: FaceGeometry | None = None,
    ) -> RenderOutput:
        """Render ``params`` (with ``geometry``, its vertices decoded already)."""
        params = params.to(self.device)
        geometry = geometry or self.geometry(params)
        return self.renderer.render(
            geometry.camera, geometry.ndc, params.albedo, params.light, size, background
        )

    def mesh(self, params: FaceParams, index: int = 0, geometry: FaceGeometry | None = None) -> MeshData:
        """The face as a textured mesh in model space (cm), expression included (with ``geometry``,
        the vertices decoded already)."""
        one = params.select(index)
        if geometry is not None:
            verts = geometry.model[index : index + 1]
        else:
            verts = self.model.vertices(one.identity.to(self.device), one.expression.to(self.device))
        return MeshData(
            vertices=verts[0].cpu().numpy(),
            faces=self.model.faces.cpu().numpy(),
            uvs=self.model.uvs.cpu().numpy(),
            texture=to_uint8(one.albedo),
        )
