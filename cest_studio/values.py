"""The plain values the window and the worker threads pass each other: which model, the controls'
state, a reconstructed face, a preview frame, and a running job's context. No Qt, no maths.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

import numpy as np

_keys = itertools.count(1)


@dataclass(frozen=True)
class ModelSpec:
    """A model the selector offers: the CEST networks with a weights file, or the landmark fit."""

    kind: str  # "cest" or "fit"
    weights: str | None = None
    label: str = ""

    @property
    def key(self) -> str:
        return "fit" if self.kind == "fit" else f"cest:{self.weights}"

    @staticmethod
    def from_key(key: str, label: str = "") -> ModelSpec:
        if key.startswith("cest:"):
            return ModelSpec("cest", key[5:], label)
        return ModelSpec("fit", None, label or "Landmark fit")


@dataclass
class ModelInfo:
    spec: ModelSpec
    method: str
    description: str
    seconds: float
    presets: dict = field(default_factory=dict)  # light presets as EditState fields


@dataclass(frozen=True)
class EditState:
    """The controls' values, in the units a person reads (degrees, 0..1); no tensors."""

    light_mode: str = "estimated"  # "estimated", "settings" or "other" (the second face's light)
    azimuth: float = 0.0
    elevation: float = 0.0
    intensity: float = 0.7
    ambient: float = 0.5
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blend: float = 0.0  # 0 = own reflectance, 1 = the second face's
    pose: tuple[float, float, float] | None = None  # pitch, yaw, roll degrees; None = estimated
    expression: tuple[float, ...] | None = None  # every expression weight; None = estimated
    view: str = "render"
    composite: bool = True


@dataclass
class FaceResult:
    """One reconstructed face, ready to show: the input, landmarks, crop and the (opaque) factors."""

    source: str
    image: np.ndarray  # HxWx3 uint8 for display (the input, maybe downscaled)
    landmarks: np.ndarray  # (68, 2) in ``image`` pixels
    crop: np.ndarray  # SxSx3 uint8
    method: str
    params: object  # engine.params.FaceParams, batch of one (only the worker threads touch it)
    model: object  # engine.facemodel.FaceModel
    renderer: object  # engine.render.Renderer
    light: dict  # estimated light as EditState fields (azimuth, elevation, intensity, ambient, color)
    pose: tuple[float, float, float]  # estimated pitch, yaw, roll in degrees
    seconds: float = 0.0
    frame: int | None = None  # video frame index
    expression: tuple[float, ...] = ()  # estimated expression weights, in the model's order
    expression_names: tuple[str, ...] = ()
    # params.json's fields other than the factors (source, face box, landmarks, crop), as the CLI writes them
    record: dict = field(default_factory=dict)
    key: int = field(default_factory=lambda: next(_keys))


@dataclass
class SecondFace:
    """The face whose reflectance, light or expression is borrowed."""

    source: str
    crop: np.ndarray
    albedo: object  # (1, 3, T, T) tensor
    light_tensor: object  # (1, 9, 3) tensor
    light: dict  # as EditState fields
    expression: tuple[float, ...] = ()  # its estimated expression weights (expression transfer)
    key: int = field(default_factory=lambda: next(_keys))


@dataclass
class PreviewFrame:
    """One computed preview: the 2D re-render, the viewport texture and vertices."""

    face_key: int
    image: np.ndarray
    texture: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    pose_changed: bool
    new_face: bool
    seconds: float
    requested_at: float
    state: EditState


class Context:
    """What a running job can use: progress reports, a stop flag, partial results."""

    def __init__(self, progress=None, partial=None):
        self.stop_event = threading.Event()
        self._progress, self._partial = progress, partial

    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def progress(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(int(done), int(total or 0))

    def partial(self, value) -> None:
        if self._partial is not None:
            self._partial(value)
