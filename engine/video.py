"""Reconstruct every frame of a video: tracked, smoothed, one shape and reflectance per person.

Frames are processed as they decode, so an interrupted run keeps every frame written so far.
While the face stays in view, identity and albedo are running (visibility-weighted) means over
the frames seen so far — the consistency across frames that CEST trains with — and viewpoint is
smoothed over time; a lost face ends the track and the next one starts afresh.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine import export
from engine.atomic import atomic_path
from engine.crop import CropSmoother, crop_params_from_landmarks
from engine.infer import Reconstruction, Reconstructor, to_uint8
from engine.outputs import params_record
from engine.params import FaceParams
from engine.videoio import VideoWriter, iter_frames, probe

log = logging.getLogger("cest")
POSE_SMOOTHING = 0.5  # weight of the previous frame's viewpoint
# Visibility the current frame's own (filled) albedo counts for in the running mean: texels no frame
# saw (inside the mouth, the nostrils, under the chin) take it, as photo mode's unseen texels do.
UNSEEN_PRIOR = 0.05


@dataclass
class Track:
    """Running consensus of one person's shape and reflectance, and the smoothed viewpoint."""

    identity_sum: torch.Tensor | None = None
    albedo_sum: torch.Tensor | None = None
    weight_sum: float = 0.0
    albedo_weight: torch.Tensor | None = None
    previous: FaceParams | None = None
    smoother: CropSmoother = field(default_factory=CropSmoother)

    def reset(self) -> None:
        self.__init__()

    def update(self, params: FaceParams, visibility: torch.Tensor | None) -> FaceParams:
        """Fold a frame in and return it with the track's identity, albedo and smoothed viewpoint."""
        weight = visibility if visibility is not None else torch.ones_like(params.albedo[:, :1])
        if self.identity_sum is None:
            self.identity_sum, self.albedo_sum = torch.zeros_like(params.identity), torch.zeros_like(params.albedo)
            self.albedo_weight = torch.zeros_like(weight)
        self.identity_sum += params.identity
        self.weight_sum += 1
        self.albedo_sum += params.albedo * weight
        self.albedo_weight += weight
        albedo = (self.albedo_sum + UNSEEN_PRIOR * params.albedo) / (self.albedo_weight + UNSEEN_PRIOR)
        smoothed = params.replace(identity=self.identity_sum / self.weight_sum, albedo=albedo)
        if self.previous is not None:
            a = POSE_SMOOTHING
            smoothed = smoothed.replace(
                rotation=a * self.previous.rotation + (1 - a) * params.rotation,
                translation=a * self.previous.translation + (1 - a) * params.translation,
                scale=a * self.previous.scale + (1 - a) * params.scale,
            )
        self.previous = smoothed
        return smoothed


def reconstruct_video(reconstructor: Reconstructor, path: str | Path, out_dir: str | Path,
                      meshes: bool = False, progress=None, stop=None) -> dict:
    """Write frames.jsonl, reconstruction.mp4 (input | reconstruction), face.obj (the person),
    and with ``meshes`` one PLY per frame. ``progress(done, total)`` and ``stop()`` let a caller
    (the app) follow and cancel. Returns a summary dict."""
    path, out_dir = Path(path), Path(out_dir)
    info = probe(path)
    made_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    track, last, stats = Track(), None, {"frames": 0, "faces": 0, "interrupted": False}
    problems: list[str] = []
    started = time.perf_counter()
    bar = tqdm(total=info.frames or None, unit="frame", desc=path.name[-24:], leave=False,
               disable=None)  # a bar on a terminal only
    try:
        # Both files are written beside their final names and renamed when complete (Ctrl-C included),
        # so a crash or an error never leaves half a file where a previous run's stood.
        with VideoWriter(out_dir / "reconstruction.mp4", info.fps) as writer, \
                atomic_path(out_dir / "frames.jsonl") as lines_path, open(lines_path, "w") as lines:
            try:
                for index, seconds, frame in iter_frames(path, problems):
                    if stop is not None and stop():
                        stats["interrupted"] = True
                        break
                    recon = _frame(reconstructor, track, frame, seconds)
                    last = recon or last
                    stats["frames"] += 1
                    stats["faces"] += recon is not None
                    lines.write(json.dumps(_frame_record(recon, index, path, seconds)) + "\n")
                    writer.write(_side_by_side(reconstructor, recon, frame))
                    if meshes and recon is not None:
                        export.write_ply(reconstructor.mesh(recon.params),
                                         out_dir / "meshes" / f"frame_{index:06d}.ply")
                    bar.update()
                    if progress is not None:
                        progress(index + 1, info.frames)
            except KeyboardInterrupt:
                stats["interrupted"] = True
                log.warning("interrupted: kept the %d frames written to %s", stats["frames"], out_dir)
            lines.flush()
    except BaseException:
        if made_dir and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # nothing came of it: leave no empty folder behind
        raise
    finally:
        bar.close()
    if last is not None:
        export.write_obj(reconstructor.mesh(last.params), out_dir / "face.obj")
    stats["seconds"] = round(time.perf_counter() - started, 2)
    stats["fps"] = round(stats["frames"] / max(stats["seconds"], 1e-6), 2)
    if problems:
        stats["damaged"] = problems[0]
    export.write_json(stats, out_dir / "summary.json")
    if stats["interrupted"] and stop is None:
        raise KeyboardInterrupt
    return stats


def _frame(reconstructor: Reconstructor, track: Track, frame: np.ndarray, seconds: float) -> Reconstruction | None:
    faces = reconstructor.detector.detect(frame)
    if not faces:
        track.reset()
        return None
    box = track.smoother.update(crop_params_from_landmarks(faces[0].landmarks), seconds)
    recon = reconstructor.reconstruct_face(frame, faces[0], crop_box=box)
    visibility = recon.extras.get("visibility")
    recon.params = track.update(recon.params, visibility)
    return recon


def _frame_record(recon: Reconstruction | None, index: int, path: Path,
                  seconds: float | None = None) -> dict:
    if recon is None:
        record = {"frame": index, "face": False}
    else:
        record = {**params_record(recon, frame=index), "face": True, "source": str(path)}
    if seconds is not None:
        record["time_s"] = round(float(seconds), 6)  # the frame's own timestamp (variable frame rates)
    return record


def _side_by_side(reconstructor: Reconstructor, recon: Reconstruction | None, frame: np.ndarray) -> np.ndarray:
    from engine.infer import CROP_SIZE

    if recon is None:
        small = _fit_square(frame, CROP_SIZE)
        return np.concatenate([small, np.zeros_like(small)], axis=1)
    crop = recon.crop_tensor().to(reconstructor.device)
    rendered = reconstructor.render(recon.params, CROP_SIZE, background=crop)
    return np.concatenate([recon.crop, to_uint8(rendered.image)], axis=1)


def _fit_square(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(frame, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    return canvas
