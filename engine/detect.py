"""Face boxes + 68 iBUG landmarks, offline, behind one small interface.

Backends, best first: ``mediapipe-tflite`` (BlazeFace + Face Mesh, shipped in
resources/detect/, run with ai-edge-litert), ``face-alignment`` (only when its
weights are already cached), ``dlib`` (when installed with its model), and
``opencv-haar`` (boxes only; the landmarks are a mean shape placed in the box).

Every backend takes gray / RGB / RGBA arrays, shrinks images whose long side exceeds
MAX_SIDE before detecting, and returns faces in the input's pixels, largest first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from engine.resources import resources_root

MAX_SIDE = 1280  # long side an image is shrunk to before detection


@dataclass
class Face:
    """One face: box (4,) x0, y0, x1, y1 and landmarks (68, 2) x, y, in input pixels."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    mesh: np.ndarray | None = None  # (468, 3) Face Mesh points (pixels; depth in pixels) if the backend has them


class NoFaceError(ValueError):
    """No face was found where one was needed."""


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """HxWx3 uint8 RGB (gray and RGBA accepted) -> faces, largest first."""
        ...


# ---------------------------------------------------------------- image prep


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Any gray / gray+alpha / RGB / RGBA array -> HxWx3 uint8.

    uint8 as is, uint16 scaled from 0..65535, floats in [0, 1] scaled, other numbers clipped to 0..255."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            scale = 255 / 65535
        else:
            scale = 255.0 if np.issubdtype(image.dtype, np.floating) and image.max(initial=0) <= 1 else 1.0
        image = np.clip(image * scale, 0, 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1..4 image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image (shape {image.shape})")
    if image.shape[2] in (1, 2):
        image = np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def shrink(image: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float]:
    """Downscale so the long side is at most max_side; returns (image, scale applied)."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _rescale_face(face: Face, scale: float) -> Face:
    """Map a face found on an image scaled by `scale` back to the original pixels."""
    if scale == 1:
        return face
    to_orig = lambda p: (np.asarray(p, np.float32) + 0.5) / scale - 0.5  # noqa: E731
    box = to_orig(face.box.reshape(2, 2)).reshape(4)
    mesh = None
    if face.mesh is not None:
        mesh = np.hstack([to_orig(face.mesh[:, :2]), face.mesh[:, 2:] / scale]).astype(np.float32)
    return Face(box, to_orig(face.landmarks), face.score, mesh)


def _box_area(face: Face) -> float:
    x0, y0, x1, y1 = face.box
    return float((x1 - x0) * (y1 - y0))


def _run(image: np.ndarray, find: Callable[[np.ndarray], list[Face]], max_side: int) -> list[Face]:
    """Shared detect(): convert, shrink, find, map back, sort largest first."""
    rgb = as_rgb(image)
    small, scale = shrink(rgb, max_side)
    faces = [_rescale_face(f, scale) for f in find(small)]
    return sorted(faces, key=_box_area, reverse=True)


def _enclosing_box(box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The union of a detector box and the landmarks' extent."""
    lo = np.minimum(box[:2], landmarks.min(axis=0))
    hi = np.maximum(box[2:], landmarks.max(axis=0))
    return np.concatenate([lo, hi]).astype(np.float32)


# ------------------------------------------------- MediaPipe 468 -> iBUG 68

# Face Mesh vertex indices for each iBUG point; pairs are averaged. Started from the mapping
# published in PeizhiYan/Mediapipe_2_Dlib_Landmarks (used by several face-reconstruction
# repos), then tuned where dlib's iBUG-trained 68-point predictor disagreed systematically
# (mean over 429 frames of 8 clips, in inter-ocular units: 0.084 -> 0.063): the jaw points
# slid along the face oval, the brows set mid-brow (upper + lower edge), the outer lower lip.
# The jaw stays approximate: the mesh's face oval is a 3D contour, not the visible jaw
# outline that iBUG annotates, so on a turned face it stays on the cheek.
# fmt: off
MESH_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    (127,), (234, 93), (132,), (58,), (172,), (136,), (149,), (148,), (152,),       # jaw 0-8
    (377,), (378,), (365,), (397,), (288,), (361,), (454, 323), (356,),             # jaw 9-16
    (70, 46), (63, 53), (105, 52), (66, 65), (107, 55),                             # brow 17-21
    (336, 285), (296, 295), (334, 282), (293, 283), (300, 276),                     # brow 22-26
    (168, 6), (197,), (195, 5), (4,), (75,), (97,), (2,), (326,), (305,),           # nose 27-35
    (33,), (160,), (158,), (133,), (153,), (144,),                                  # eye 36-41
    (362,), (385,), (387,), (263,), (373,), (380,),                                 # eye 42-47
    (61,), (39,), (37,), (0,), (267,), (269,), (291,),                              # upper lip 48-54
    (405,), (314,), (17,), (84,), (181,),                                           # lower lip 55-59
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),                      # inner lips 60-67
)
# fmt: on


def _ibug68_flip() -> np.ndarray:
    jaw = list(range(16, -1, -1))
    brows = list(range(26, 16, -1))
    nose = [27, 28, 29, 30, 35, 34, 33, 32, 31]
    eyes = [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    mouth = [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
    return np.array(jaw + brows + nose + eyes + mouth)


# IBUG68_FLIP[i]: the point that becomes point i when the image is mirrored left-right.
IBUG68_FLIP = _ibug68_flip()


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the left-right mirrored image (width in pixels)."""
    flipped = landmarks[IBUG68_FLIP].copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    return flipped


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(468, 2+) Face Mesh points -> (68, 2) iBUG points."""
    pairs = np.array([(i[0], i[-1]) for i in MESH_TO_IBUG68])
    return ((mesh[pairs[:, 0], :2] + mesh[pairs[:, 1], :2]) / 2).astype(np.float32)


# ----------------------------------------------------- BlazeFace + Face Mesh

_DET_SIZE = 128  # BlazeFace short-range input
_MESH_SIZE = 192  # Face Mesh input
_ROI_SCALE = 1.5  # MediaPipe enlarges the face box by this for the mesh crop
_NMS_IOU = 0.3


def blazeface_anchors() -> np.ndarray:
    """(896, 2) anchor centres of the short-range model, normalised to [0, 1]."""
    layers = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = _DET_SIZE // stride
        c = (np.arange(n) + 0.5) / n
        xx, yy = np.meshgrid(c, c)
        layers.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], 1), per_cell, axis=0))
    return np.concatenate(layers).astype(np.float32)


def decode_blazeface(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, min_score: float):
    """Raw (896, 16) regressors + (896,) logits -> boxes (N, 4), keypoints (N, 6, 2), scores (N,).

    Positions are normalised to [0, 1] of the 128 x 128 input."""
    scores = 1 / (1 + np.exp(-np.clip(logits, -80, 80)))
    keep = scores > min_score
    raw, anchors, scores = raw[keep] / _DET_SIZE, anchors[keep], scores[keep]
    centre, size = raw[:, :2] + anchors, raw[:, 2:4]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    keypoints = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None]
    valid = (size > 0).all(axis=1)
    return boxes[valid], keypoints[valid], scores[valid]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = _NMS_IOU):
    """MediaPipe's weighted NMS: overlapping detections are averaged by score."""
    order = np.argsort(-scores)
    data = np.concatenate([boxes, keypoints.reshape(len(boxes), 12)], axis=1)[order]
    scores = scores[order]
    out = []
    while len(data):
        overlap = _iou(data[0, :4], data[:, :4]) > iou
        merged = (data[overlap] * scores[overlap, None]).sum(0) / scores[overlap].sum()
        out.append((merged[:4], merged[4:].reshape(-1, 2), float(scores[0])))
        data, scores = data[~overlap], scores[~overlap]
    return out


def _tiles(shape: tuple[int, ...], n: int) -> list[tuple[int, int, int]]:
    """Square tiles (x, y, side) of side 2L/(n+1), overlapping by half, covering the image.
    Tiles never exceed the short side: a panorama is cut into squares of its height, so a face
    that fills the height is found however long the image."""
    h, w = shape[:2]
    side = max(1, min(round(2 * max(h, w) / (n + 1)), min(h, w))) if n > 1 else max(h, w)

    def starts(dim: int) -> np.ndarray:
        count = max(1, math.ceil(2 * (dim - side) / side - 0.01) + 1)
        return np.linspace(0, max(dim - side, 0), count).round()

    return [(int(x), int(y), side) for y in starts(h) for x in starts(w)]


def _known(box: np.ndarray, faces: list[Face]) -> bool:
    """Whether ``box`` overlaps a face found already (a coarser tile level found it)."""
    return bool(faces) and float(_iou(np.asarray(box, np.float32), np.stack([f.box for f in faces])).max()) > _NMS_IOU


def _letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Resize keeping aspect and pad (centred) to size x size; returns (img, scale, pad xy)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    px, py = (size - nw) // 2, (size - nh) // 2
    out = cv2.copyMakeBorder(small, py, size - nh - py, px, size - nw - px, cv2.BORDER_CONSTANT, value=0)
    return out, scale, np.array([px, py], np.float32)


@dataclass
class Roi:
    """A rotated square in the image: centre (x, y) in pixels, side, angle (rad, of the eye line)."""

    centre: np.ndarray
    side: float
    angle: float

    def matrix(self, size: int) -> np.ndarray:
        """2x3 affine mapping crop pixel (x, y) to image pixel (x, y)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.side / size
        rot = np.array([[c, -s], [s, c]]) * k
        offset = self.centre - rot @ np.full(2, (size - 1) / 2)
        return np.hstack([rot, offset[:, None]])


def _eye_angle(left: np.ndarray, right: np.ndarray) -> float:
    """Angle (rad, image axes) of the line from the image-left eye to the image-right eye."""
    d = np.asarray(right) - np.asarray(left)
    return math.atan2(d[1], d[0])


def _roi_from_box(box: np.ndarray, angle: float, scale: float = _ROI_SCALE) -> Roi:
    """MediaPipe's detection ROI: the box centre, its long side enlarged, rotated by the eyes."""
    size = box[2:] - box[:2]
    return Roi((box[:2] + box[2:]) / 2, float(size.max() * scale), angle)


def _roi_from_points(points: np.ndarray, angle: float, scale: float = _ROI_SCALE) -> Roi:
    """Square ROI around points, measured in the frame rotated by angle."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    local = points @ rot  # rot.T @ p: into the level frame
    lo, hi = local.min(0), local.max(0)
    return Roi(rot @ ((lo + hi) / 2), float((hi - lo).max() * scale), angle)


def _warp_crop(rgb: np.ndarray, m: np.ndarray, roi: Roi, size: int) -> np.ndarray:
    """The ROI resampled to size x size (m: crop pixel -> image pixel)."""
    factor = int(roi.side / size)
    if factor >= 2:  # shrinking over 2x: area-average first so the crop does not alias
        rgb, m = _area_shrink(rgb, m, roi, factor)
    return cv2.warpAffine(
        rgb, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


def _area_shrink(rgb: np.ndarray, m: np.ndarray, roi: Roi, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The ROI's region shrunk by an integer factor, and m re-aimed at it."""
    h, w = rgb.shape[:2]
    lo = np.clip(np.floor(roi.centre - 0.75 * roi.side).astype(int), 0, [w, h])
    hi = np.clip(np.ceil(roi.centre + 0.75 * roi.side).astype(int), 0, [w, h])
    (x0, y0), (nx, ny) = lo, (hi - lo) // factor
    if nx < 1 or ny < 1:
        return rgb, m
    small = cv2.resize(
        rgb[y0 : y0 + ny * factor, x0 : x0 + nx * factor], (nx, ny), interpolation=cv2.INTER_AREA
    )
    # image pixel x <-> small pixel (x - x0 + 0.5) / factor - 0.5
    offset = (m[:, 2] - lo + 0.5) / factor - 0.5
    return small, np.hstack([m[:, :2] / factor, offset[:, None]])


def _load_interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    with _native_stderr_silenced():  # LiteRT's C++ "INFO: Created TensorFlow Lite XNNPACK delegate"
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null meanwhile (what native code prints; Python's errors still raise)."""
    try:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, AttributeError, ValueError):
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _outputs_by_size(interpreter) -> list[int]:
    """Output tensor indices, largest first (the regressors / mesh before the scores)."""
    details = interpreter.get_output_details()
    return [d["index"] for d in sorted(details, key=lambda d: -int(np.prod(d["shape"])))]


class MediaPipeDetector:
    """BlazeFace short-range boxes, then the 468-point Face Mesh, mapped to 68 iBUG points.

    One instance per thread: the TFLite interpreters are not thread-safe."""

    name = "mediapipe-tflite"

    def __init__(
        self,
        min_score: float = 0.5,
        refine: bool = True,
        threads: int | None = None,
        max_side: int = MAX_SIDE,
        model_dir: Path | None = None,
        tile_levels: int = 5,
        thorough_levels: int = 9,
        refiner: bool | Path = True,
    ):
        model_dir = Path(model_dir or resources_root() / "detect")
        threads = threads or min(4, os.cpu_count() or 1)
        self.min_score, self.refine = min_score, refine
        self.max_side, self.tile_levels, self.thorough_levels = max_side, tile_levels, thorough_levels
        self._det = _load_interpreter(model_dir / "face_detection_short_range.tflite", threads)
        self._mesh = _load_interpreter(model_dir / "face_landmark.tflite", threads)
        self._det_out = _outputs_by_size(self._det)
        self._mesh_out = _outputs_by_size(self._mesh)
        self._anchors = blazeface_anchors()
        self._refiner_path = _refiner_file(model_dir, refiner)
        self._refiner = _load_refiner(model_dir, refiner)
        # what cached training landmarks depend on: the backend and, if any, the refiner's file
        self.cache_key = self.name + (f"+refiner:{_file_digest(self._refiner_path)}" if self._refiner else "")

    def detect(self, image: np.ndarray, thorough: bool = False) -> list[Face]:
        """Faces, largest first. ``thorough`` (every face of a group photo): search every tile
        level, down to faces of about 1/20 of the long side, instead of stopping at the first
        level that finds one."""
        return _run(image, lambda rgb: self._find(rgb, thorough), self.max_side)

    def _find(self, rgb: np.ndarray, thorough: bool = False) -> list[Face]:
        """Whole image first, then finer tiles (the short-range detector misses faces under about
        1/5 of what it sees): until the mesh confirms a face, or with ``thorough`` through every
        level, keeping the faces each finer level adds."""
        found: list[Face] = []
        for level in range(1, (self.thorough_levels if thorough else self.tile_levels) + 1):
            boxes = [b for b in self.detect_boxes(rgb, level) if not _known(b[0], found)]
            faces = [
                self.landmarks_in_roi(rgb, _roi_from_box(box, _eye_angle(kp[0], kp[1])), box, score)
                for box, kp, score in boxes
            ]
            found += [f for f in faces if f is not None and not _known(f.box, found)]
            if found and not thorough:
                return found
        return found

    def detect_boxes(self, rgb: np.ndarray, level: int = 1) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """BlazeFace on overlapping tiles (level 1: the whole image; n: tiles of 2/(n+1) of it).
        Returns [(box (4,), keypoints (6, 2), score)] in pixels of rgb."""
        parts = [
            self._blazeface(rgb[y : y + t, x : x + t], np.array([x, y]))
            for x, y, t in _tiles(rgb.shape, level)
        ]
        boxes, keypoints, scores = (np.concatenate(p) for p in zip(*parts))
        return weighted_nms(boxes, keypoints, scores) if len(scores) else []

    def _blazeface(self, rgb: np.ndarray, origin: np.ndarray):
        """Raw detections (boxes (N, 4), keypoints (N, 6, 2), scores) in pixels, offset by origin."""
        tensor, scale, pad = _letterbox(rgb, _DET_SIZE)
        x = (tensor.astype(np.float32) / 127.5 - 1)[None]
        raw, logits = self._invoke(self._det, self._det_out, x)
        boxes, keypoints, scores = decode_blazeface(
            raw.reshape(-1, 16), logits.reshape(-1), self._anchors, self.min_score
        )
        to_px = lambda p: (p * _DET_SIZE - pad) / scale - 0.5 + origin  # noqa: E731
        return to_px(boxes.reshape(-1, 2, 2)).reshape(-1, 4), to_px(keypoints), scores

    def landmarks_in_roi(self, rgb: np.ndarray, roi: Roi, box: np.ndarray, score: float) -> Face | None:
        """Face Mesh in a ROI (refined once from its own points); None if the mesh sees no face."""
        mesh = self.mesh(rgb, roi)
        if mesh is not None and self.refine:
            roi = _roi_from_points(mesh[:, :2], _eye_angle(mesh[33, :2], mesh[263, :2]))
            mesh = self.mesh(rgb, roi)
        if mesh is None:
            return None
        mesh[:, 2] *= roi.side / _MESH_SIZE  # depth in image pixels, like x and y
        landmarks = self._refiner(rgb, mesh) if self._refiner else mesh_to_ibug68(mesh)
        return Face(_enclosing_box(np.asarray(box, np.float32), landmarks), landmarks, float(score), mesh)

    def mesh(self, rgb: np.ndarray, roi: Roi) -> np.ndarray | None:
        """(468, 3) mesh points in image pixels (z in crop pixels), or None if no face."""
        m = roi.matrix(_MESH_SIZE)
        crop = _warp_crop(rgb, m, roi, _MESH_SIZE)
        raw, flag = self._invoke(self._mesh, self._mesh_out, (crop.astype(np.float32) / 255)[None])
        if 1 / (1 + math.exp(-float(np.clip(flag.ravel()[0], -80, 80)))) < self.min_score:
            return None
        pts = raw.reshape(468, 3)
        xy = (pts[:, :2] - 0.5) @ m[:, :2].T + m[:, 2]
        return np.hstack([xy, pts[:, 2:]]).astype(np.float32)

    @staticmethod
    def _invoke(interpreter, outputs: list[int], x: np.ndarray) -> list[np.ndarray]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ascontiguousarray(x))
        interpreter.invoke()
        return [interpreter.get_tensor(i) for i in outputs]


REFINER_FILE = "landmark_refiner.npz"


def _file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _refiner_file(model_dir: Path, refiner: bool | Path) -> Path:
    return Path(refiner) if not isinstance(refiner, bool) else model_dir / REFINER_FILE


def _load_refiner(model_dir: Path, refiner: bool | Path):
    """The learned 468 -> 68 map and cascade (engine.landmark_refine), or None for the index table."""
    if refiner is False:
        return None
    path = _refiner_file(model_dir, refiner)
    if not path.is_file():
        if refiner is True:
            return None  # an older resources folder: the index table still works
        raise FileNotFoundError(f"landmark refiner not found: {path}")
    from engine.landmark_refine import LandmarkRefiner

    return LandmarkRefiner.load(path)


# ------------------------------------------------------------ other backends


def _haar_cascade_path() -> Path:
    return Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


def haar_boxes(cascade, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """OpenCV Haar cascade: [(box (4,), score in (0, 1))] in pixels of rgb."""
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    side = max(24, min(gray.shape) // 12)
    rects, _, weights = cascade.detectMultiScale3(
        gray, scaleFactor=1.2, minNeighbors=5, minSize=(side, side), outputRejectLevels=True
    )
    return [
        (np.array([x, y, x + w, y + h], np.float32) - 0.5, float(1 - math.exp(-max(float(s), 0))))
        for (x, y, w, h), s in zip(rects, np.ravel(weights))
    ]


class HaarDetector:
    """OpenCV Haar boxes; the landmarks are a mean shape placed in the box (rough, no pose)."""

    name = "opencv-haar"

    def __init__(self, max_side: int = MAX_SIDE, template: Path | None = None):
        self.max_side = max_side
        self._cascade = cv2.CascadeClassifier(str(_haar_cascade_path()))
        self._template = np.load(template or resources_root() / "detect" / "haar_mean_shape68.npy")

    def detect(self, image: np.ndarray) -> list[Face]:
        return _run(image, self._find, self.max_side)

    def _find(self, rgb: np.ndarray) -> list[Face]:
        faces = []
        for box, score in haar_boxes(self._cascade, rgb):
            landmarks = (box[:2] + self._template * (box[2:] - box[:2])).astype(np.float32)
            faces.append(Face(_enclosing_box(box, landmarks), landmarks, score))
        return faces


def _fan_weight_files() -> list[Path]:
    """The files face-alignment would download into the torch hub cache (2D FAN + S3FD)."""
    import torch
    from face_alignment import api
    from face_alignment.detection.sfd import sfd_detector

    version = torch.__version__
    version = version.rsplit(".", 2 if "dev" in version else 1)[0]
    table = getattr(api, "models_urls", {})
    urls = table.get(version) or getattr(api, "default_model_urls", None) or table
    names = [urls["2DFAN-4"], sfd_detector.models_urls["s3fd"]]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    return [cache / os.path.basename(n.split("?")[0]) for n in names]


class FaceAlignmentDetector:
    """1adrianb/face-alignment: S3FD boxes + 2D FAN, from weights already in the torch hub cache."""

    name = "face-alignment"

    def __init__(self, device: str = "cpu", max_side: int = MAX_SIDE):
        import inspect

        import face_alignment

        kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
        options = (
            {"compile": False}
            if "compile" in inspect.signature(face_alignment.FaceAlignment).parameters
            else {}
        )
        self.max_side = max_side
        self._fa = face_alignment.FaceAlignment(kind, device=device, face_detector="sfd", **options)

    def detect(self, image: np.ndarray) -> list[Face]:
        return _run(image, self._find, self.max_side)

    def _find(self, rgb: np.ndarray) -> list[Face]:
        # boxes as float64: face-alignment 1.5 fails on float32 boxes
        boxes = [np.asarray(b, np.float64) for b in self._fa.face_detector.detect_from_image(rgb.copy())]
        if not boxes:
            return []
        landmarks = self._fa.get_landmarks_from_image(rgb, detected_faces=boxes)
        faces = []
        for lm, box in zip(landmarks or [], boxes):
            lm = np.asarray(lm, np.float32)[:, :2]
            score = float(box[4]) if len(box) > 4 else 1.0
            faces.append(Face(_enclosing_box(box[:4].astype(np.float32), lm), lm, score))
        return faces


def _dlib_predictor_path() -> Path:
    """$CEST_DLIB_PREDICTOR, or the 68-point model inside face-recognition-models (found, not
    imported: that package needs the removed pkg_resources)."""
    if env := os.environ.get("CEST_DLIB_PREDICTOR"):
        return Path(env)
    spec = importlib.util.find_spec("face_recognition_models")
    folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else Path()
    return folder / "models" / "shape_predictor_68_face_landmarks.dat"


class DlibDetector:
    """dlib HOG boxes + the 68-point shape predictor (its training data excludes commercial use)."""

    name = "dlib"

    def __init__(self, max_side: int = MAX_SIDE, predictor: Path | None = None):
        import dlib

        self.max_side = max_side
        self._boxes = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(predictor or _dlib_predictor_path()))

    def detect(self, image: np.ndarray) -> list[Face]:
        return _run(image, self._find, self.max_side)

    def _find(self, rgb: np.ndarray) -> list[Face]:
        rects, scores, _ = self._boxes.run(rgb, 1, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            parts = self._shape(rgb, rect).parts()
            lm = np.array([(p.x, p.y) for p in parts], np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
            faces.append(Face(_enclosing_box(box, lm), lm, float(score)))
        return faces


# ------------------------------------------------------------ backend choice


def _missing_module(module: str, package: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{package} is not installed (pip install {package})"
    return None


def _missing_files(paths: list[Path], what: str) -> str | None:
    absent = [str(p) for p in paths if not p.is_file()]
    return f"{what} not found: {', '.join(absent)}" if absent else None


def _mediapipe_missing() -> str | None:
    models = [
        resources_root() / "detect" / n for n in ("face_detection_short_range.tflite", "face_landmark.tflite")
    ]
    return _missing_module("ai_edge_litert", "ai-edge-litert") or _missing_files(models, "MediaPipe models")


def _face_alignment_missing() -> str | None:
    if reason := _missing_module("face_alignment", "face-alignment"):
        return reason
    try:
        files = _fan_weight_files()
    except (ImportError, AttributeError, KeyError, TypeError) as exc:  # an unknown version: say so
        return f"face-alignment's weight files could not be located ({exc})"
    return _missing_files(files, "face-alignment weights (it downloads them at first use; offline here)")


def _dlib_missing() -> str | None:
    if reason := _missing_module("dlib", "dlib-bin"):
        return reason
    if not os.environ.get("CEST_DLIB_PREDICTOR") and (
        reason := _missing_module("face_recognition_models", "face-recognition-models")
    ):
        return reason
    return _missing_files([_dlib_predictor_path()], "dlib's 68-point shape predictor")


def _haar_missing() -> str | None:
    template = resources_root() / "detect" / "haar_mean_shape68.npy"
    return _missing_files([_haar_cascade_path(), template], "Haar cascade / mean shape")


# name -> (why it is unavailable, or None; constructor), in order of preference
BACKENDS: dict[str, tuple[Callable[[], str | None], Callable[..., Detector]]] = {
    "mediapipe-tflite": (_mediapipe_missing, MediaPipeDetector),
    "face-alignment": (_face_alignment_missing, FaceAlignmentDetector),
    "dlib": (_dlib_missing, DlibDetector),
    "opencv-haar": (_haar_missing, HaarDetector),
}


def backend_status() -> dict[str, str | None]:
    """Each backend -> None if usable, else the reason it is not."""
    return {name: missing() for name, (missing, _) in BACKENDS.items()}


def available_backends() -> list[str]:
    """Usable backends, best first."""
    return [name for name, reason in backend_status().items() if reason is None]


def create_detector(backend: str = "auto", **options) -> Detector:
    """A detector by backend name; "auto" takes the best available one."""
    if backend == "auto":
        status = backend_status()
        usable = [name for name, reason in status.items() if reason is None]
        if not usable:
            reasons = "; ".join(f"{n}: {r}" for n, r in status.items())
            raise RuntimeError(f"no face detector backend is available ({reasons})")
        backend = usable[0]
    if backend not in BACKENDS:
        raise ValueError(f"unknown detector backend {backend!r}; choose from {list(BACKENDS)} or 'auto'")
    missing, make = BACKENDS[backend]
    if reason := missing():
        raise RuntimeError(f"detector backend {backend!r} is unavailable: {reason}")
    return make(**options)


def detect_largest(image: np.ndarray, detector: Detector | None = None, source: str = "the image") -> Face:
    """The largest face, or NoFaceError("no face found in <source>")."""
    faces = (detector or default_detector()).detect(image)
    if not faces:
        raise NoFaceError(f"no face found in {source}")
    return faces[0]


_DEFAULT: Detector | None = None


def default_detector() -> Detector:
    """One shared "auto" detector, created on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = create_detector("auto")
    return _DEFAULT
