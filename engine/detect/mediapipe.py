"""The MediaPipe backend: BlazeFace boxes, then Face Mesh landmarks, run with ai-edge-litert."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.detect.base import MAX_SIDE, Face, _enclosing_box, _run
from engine.detect.ibug68 import mesh_to_ibug68
from engine.resources import resources_root

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
    return (
        bool(faces)
        and float(_iou(np.asarray(box, np.float32), np.stack([f.box for f in faces])).max()) > _NMS_IOU
    )


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

    @functools.cached_property
    def cache_key(self) -> str:
        """What cached training landmarks depend on: the backend and, if any, the refiner's file
        (hashed on first use only: detection itself never needs it)."""
        return self.name + (f"+refiner:{_file_digest(self._refiner_path)}" if self._refiner else "")

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

    track_refine = True  # track(): a second mesh run in the ROI of the first one's points

    def track(self, image: np.ndarray, previous: Face) -> Face | None:
        """The face of ``previous`` (a Face of the frame before, with its mesh) found again in
        ``image`` by Face Mesh alone, started from the ROI of the previous mesh (MediaPipe's own
        video mode: no BlazeFace) and, as detect() does, run once more in the ROI of its own points;
        None when the mesh no longer sees a face there."""
        before = previous.mesh
        if before is None:
            return None

        def find(rgb: np.ndarray) -> list[Face]:
            scale = rgb.shape[1] / image.shape[1]  # what _run's shrink applied
            points = (before[:, :2] + 0.5) * scale - 0.5
            roi = _roi_from_points(points, _eye_angle(points[33], points[263]))
            mesh = self.mesh(rgb, roi)
            if mesh is not None and self.refine and self.track_refine:  # once more in its own ROI
                roi = _roi_from_points(mesh[:, :2], _eye_angle(mesh[33, :2], mesh[263, :2]))
                mesh = self.mesh(rgb, roi)
            if mesh is None:
                return []
            mesh[:, 2] *= roi.side / _MESH_SIZE
            landmarks = self._refiner(rgb, mesh) if self._refiner else mesh_to_ibug68(mesh)
            box = np.concatenate([mesh[:, :2].min(0), mesh[:, :2].max(0)]).astype(np.float32)
            return [Face(_enclosing_box(box, landmarks), landmarks, previous.score, mesh)]

        faces = _run(image, find, self.max_side)
        return faces[0] if faces else None

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
    """The learned 468 -> 68 map and cascade (engine.detect.refine), or None for the index table."""
    if refiner is False:
        return None
    path = _refiner_file(model_dir, refiner)
    if not path.is_file():
        if refiner is True:
            return None  # an older resources folder: the index table still works
        raise FileNotFoundError(f"landmark refiner not found: {path}")
    from engine.detect.refine import LandmarkRefiner

    return LandmarkRefiner.load(path)
