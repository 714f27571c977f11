"""Reconstruct every frame of a video: tracked, smoothed, one shape and reflectance per person.

Frames are processed as they decode, so an interrupted run keeps every frame written so far.
While the face stays in view, identity and albedo are running (visibility-weighted) means over
the frames seen so far — the consistency across frames that CEST trains with — and viewpoint is
smoothed over time; a lost face, a cut to another shot or a face of another shape ends the track
and the next one starts afresh (frames.jsonl numbers the tracks).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.detect import NoFaceError
from engine.io import mesh as export
from engine.io.atomic import atomic_path
from engine.io.mesh import to_json
from engine.io.staging import commit, discard, new_stage, remove_stale_stages, target_error
from engine.io.video import VideoWriter, iter_frames, probe
from engine.params import FaceParams
from engine.reconstruct.reconstructor import Reconstruction, Reconstructor, to_uint8
from engine.reconstruct.shots import IDENTITY_JUMP_CM, MIN_TRACK_FRAMES, CutDetector, shape_distance
from engine.reconstruct.views import params_record
from engine.tracking import CropTracker, TrackedFace

log = logging.getLogger("cest")
POSE_SMOOTHING = 0.5  # weight of the previous frame's viewpoint
# Visibility the current frame's own (filled) albedo counts for in the running mean: texels no frame
# saw (inside the mouth, the nostrils, under the chin) take it, as photo mode's unseen texels do.
UNSEEN_PRIOR = 0.05


@dataclass
class Track:
    """Running consensus of one person's shape and reflectance, and the smoothed viewpoint (the
    crop box is followed by engine.tracking.CropTracker)."""

    identity_sum: torch.Tensor | None = None
    albedo_sum: torch.Tensor | None = None
    weight_sum: float = 0.0
    albedo_weight: torch.Tensor | None = None
    previous: FaceParams | None = None
    number: int = 0  # 0 for the first person tracked, 1 for the next...

    def reset(self) -> None:
        """End the track; the next face starts a new one (with the next number)."""
        number = self.number + (self.weight_sum > 0)
        self.__init__()
        self.number = number

    def someone_else(self, face_model, params: FaceParams) -> bool:
        """Whether ``params``' shape is too far from the track's to be the same person."""
        if self.weight_sum < MIN_TRACK_FRAMES:
            return False
        mean = self.identity_sum / self.weight_sum
        return shape_distance(face_model, params.identity, mean) > IDENTITY_JUMP_CM

    def update(self, params: FaceParams, visibility: torch.Tensor | None) -> FaceParams:
        """Fold a frame in and return it with the track's identity, albedo and smoothed viewpoint."""
        weight = visibility if visibility is not None else torch.ones_like(params.albedo[:, :1])
        if self.identity_sum is None:
            self.identity_sum, self.albedo_sum = (
                torch.zeros_like(params.identity),
                torch.zeros_like(params.albedo),
            )
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


def reconstruct_video(
    reconstructor: Reconstructor,
    path: str | Path,
    out_dir: str | Path,
    meshes: bool = False,
    progress=None,
    stop=None,
    animation: bool = False,
    on_frame=None,
) -> dict:
    """Write frames.jsonl, reconstruction.mp4 (input | reconstruction), face.obj (the last person),
    summary.json, with ``meshes`` one PLY per frame and with ``animation`` animation.glb and
    blendshapes.csv (engine/reconstruct/animation.py). ``progress(done, total)`` and ``stop()`` let
    a caller (the app) follow and cancel; ``on_frame(index, recon)`` gets each frame's final
    Reconstruction (None without a face) before its progress call. Returns a summary dict
    (``folder``: where it was written).

    Everything is written into a hidden folder beside ``out_dir`` and moved in when complete, so a
    previous result stays whole until the new one is; an interrupted re-run keeps its frames in
    ``OUT.partial`` instead (see place_result). A video with no face at all raises NoFaceError."""
    path, out_dir = Path(path), Path(out_dir)
    info = probe(path)
    remove_stale_stages(out_dir)  # hidden folders of runs killed outright
    stage = new_stage(out_dir)
    try:
        stats = _reconstruct_into(
            reconstructor, path, info, stage, meshes, progress, stop, animation, on_frame
        )
    except OSError as err:
        discard(stage)
        raise target_error(err, stage, out_dir) from err
    except BaseException:
        discard(stage)
        raise
    stats["folder"] = str(place_result(stage, out_dir, stats))
    if stats["interrupted"] and stop is None:
        raise KeyboardInterrupt
    return stats


def _reconstruct_into(
    reconstructor,
    path: Path,
    info,
    folder: Path,
    meshes: bool,
    progress,
    stop,
    animation: bool = False,
    on_frame=None,
) -> dict:
    track, tracker, last, main = Track(), CropTracker(cuts=CutDetector()), None, MainShape()
    stats = {"frames": 0, "faces": 0, "tracks": 0, "interrupted": False}
    problems: list[str] = []
    started = time.perf_counter()
    bar = tqdm(
        total=info.frames or None, unit="frame", desc=path.name[-24:], leave=False, disable=None
    )  # a bar on a terminal only
    try:
        # Both files are written beside their final names and renamed when complete (Ctrl-C included).
        with (
            VideoWriter(folder / "reconstruction.mp4", info.fps) as writer,
            atomic_path(folder / "frames.jsonl") as lines_path,
            open(lines_path, "w") as lines,
        ):
            try:
                for index, seconds, frame in iter_frames(path, problems):
                    if stop is not None and stop():
                        stats["interrupted"] = True
                        break
                    recon = _frame(reconstructor, track, tracker, frame, seconds)
                    last = recon or last
                    if recon is not None:
                        main.add(track.number, recon.params)
                    stats["frames"] += 1
                    stats["faces"] += recon is not None
                    stats["tracks"] = track.number + 1 if last is not None else 0
                    lines.write(to_json(_frame_record(recon, index, path, seconds, track.number)) + "\n")
                    writer.write(_side_by_side(reconstructor, recon, frame))
                    if meshes and recon is not None:
                        mesh = reconstructor.mesh(recon.params, geometry=reconstructor.face_geometry(recon))
                        export.write_ply(mesh, folder / "meshes" / f"frame_{index:06d}.ply")
                    bar.update()
                    if on_frame is not None:
                        on_frame(index, recon)
                    if progress is not None:
                        progress(index + 1, info.frames)
            except KeyboardInterrupt:
                stats["interrupted"] = True
            lines.flush()
    finally:
        bar.close()
    if last is None and not stats["interrupted"]:
        raise NoFaceError(
            f"{path}: no face found in any of its {stats['frames']} frames "
            f"(a face smaller than about 1/20 of the frame may be too small to find)"
        )
    if last is not None:
        export.write_obj(
            reconstructor.mesh(last.params, geometry=reconstructor.face_geometry(last)), folder / "face.obj"
        )
    if animation and last is not None:
        write_clip_animation(reconstructor, folder, info, main.params)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    stats["fps"] = round(stats["frames"] / max(stats["seconds"], 1e-6), 2)
    if problems:
        stats["damaged"] = problems[0]
    export.write_json(stats, folder / "summary.json")
    return stats


class MainShape:
    """The shape and albedo of the person seen in the most frames: the clip's one shape."""

    def __init__(self):
        self.params: FaceParams | None = None
        self._best, self._track, self._count = 0, -1, 0

    def add(self, track: int, params: FaceParams) -> None:
        self._track, self._count = track, (self._count + 1 if track == self._track else 1)
        if self._count >= self._best:  # a track's latest params hold its running means
            self._best, self.params = self._count, params


def write_clip_animation(reconstructor: Reconstructor, folder: Path, info, params: FaceParams) -> list[Path]:
    """animation.glb and blendshapes.csv of the finished ``folder`` (its frames.jsonl)."""
    from engine.reconstruct.animation import write_animation

    size = (info.width, info.height) if info.rotation % 180 == 0 else (info.height, info.width)
    return write_animation(folder, reconstructor.model, params.identity, params.albedo, info.fps, size)


def place_result(stage: Path, out_dir: Path, stats: dict) -> Path:
    """Move a finished stage into ``out_dir``. An interrupted run goes there too unless ``out_dir``
    holds a previous result: then that stays and the partial one goes to ``OUT.partial``."""
    if stats["interrupted"] and (out_dir / "frames.jsonl").exists():
        partial = out_dir.with_name(out_dir.name + ".partial")
        if partial.exists():
            discard(partial)
        os.rename(stage, partial)
        log.warning(
            "interrupted: kept the %d frames written in %s; the previous complete result in %s is untouched",
            stats["frames"],
            partial,
            out_dir,
        )
        return partial
    commit(stage, out_dir)
    if stats["interrupted"]:
        log.warning("interrupted: kept the %d frames written to %s", stats["frames"], out_dir)
    return out_dir


def _frame(
    reconstructor: Reconstructor, track: Track, tracker: CropTracker, frame: np.ndarray, seconds: float
) -> Reconstruction | None:
    tracked = tracker.step(frame, reconstructor.detector.detect(frame), seconds)
    if tracked is None or tracked.new_track:
        track.reset()  # no face, or another shot: maybe another person
    if tracked is None:
        return None
    recon = _estimate(reconstructor, frame, tracked)
    if track.someone_else(reconstructor.model, recon.params):
        track.reset()  # the shape is another person's: start their own means (and crop smoothing)
        recon = _estimate(reconstructor, frame, tracker.restart(tracked, seconds))
    recon.params = track.update(recon.params, recon.extras.get("visibility"))
    return recon


def _estimate(reconstructor: Reconstructor, frame: np.ndarray, tracked: TrackedFace):
    return reconstructor.reconstruct_face(frame, tracked.face, crop_box=tracked.box)


def _frame_record(
    recon: Reconstruction | None,
    index: int,
    path: Path,
    seconds: float | None = None,
    track: int | None = None,
) -> dict:
    if recon is None:
        record = {"frame": index, "face": False}
    else:
        record = {**params_record(recon, frame=index), "face": True, "source": str(path)}
        if track is not None:
            record["track"] = track  # one number per person in view: it changes when the person does
    if seconds is not None:
        record["time_s"] = round(float(seconds), 6)  # the frame's own timestamp (variable frame rates)
    return record


def _side_by_side(
    reconstructor: Reconstructor, recon: Reconstruction | None, frame: np.ndarray
) -> np.ndarray:
    from engine.reconstruct.reconstructor import CROP_SIZE

    if recon is None:
        small = _fit_square(frame, CROP_SIZE)
        return np.concatenate([small, np.zeros_like(small)], axis=1)
    crop = recon.crop_tensor().to(reconstructor.device)
    geometry = reconstructor.face_geometry(recon)  # decoded once for the frame's outputs
    rendered = reconstructor.render(recon.params, CROP_SIZE, background=crop, geometry=geometry)
    return np.concatenate([recon.crop, to_uint8(rendered.image)], axis=1)


def _fit_square(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(frame, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    return canvas
