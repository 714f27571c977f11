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
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.detect import Face, NoFaceError
from engine.detect.tracker import FaceTracker
from engine.io import mesh as export
from engine.io.atomic import atomic_path, remove_leftovers
from engine.io.mesh import to_json
from engine.io.staging import commit, discard, new_stage, remove_stale_stages, target_error
from engine.io.video import VideoWriter, iter_frames, probe
from engine.params import FaceParams
from engine.reconstruct.person import MainShape, PersonAlbedo, Track
from engine.reconstruct.pipeline import OrderedWorker, prefetch
from engine.reconstruct.reconstructor import Reconstruction, Reconstructor, to_uint8
from engine.reconstruct.shots import CutDetector
from engine.reconstruct.views import params_record
from engine.tracking import CropTracker, TrackedFace

log = logging.getLogger("cest")


def reconstruct_video(
    reconstructor: Reconstructor,
    path: str | Path,
    out_dir: str | Path,
    meshes: bool = False,
    progress=None,
    stop=None,
    animation: bool = False,
    preview: bool = False,
    on_frame=None,
) -> dict:
    """Write frames.jsonl, face.obj (the last person), summary.json, with ``preview``
    reconstruction.mp4 (input | reconstruction), with ``meshes`` one PLY per frame and with
    ``animation`` animation.glb and blendshapes.csv (engine/reconstruct/animation.py).
    ``progress(done, total)`` and ``stop()`` let a caller (the app) follow and cancel;
    ``on_frame(index, recon)`` gets each frame's final Reconstruction (None without a face) before
    its progress call. All three are called from the thread that finishes the frames too. Returns a
    summary dict (``folder``: where it was written).

    Everything is written into a hidden folder beside ``out_dir`` and moved in when complete, so a
    previous result stays whole until the new one is; an interrupted re-run keeps its frames in
    ``OUT.partial`` instead (see place_result). A video with no face at all raises NoFaceError."""
    path, out_dir = Path(path), Path(out_dir)
    info = probe(path)
    remove_stale_stages(out_dir)  # hidden folders of runs killed outright
    stage = new_stage(out_dir)
    try:
        stats = _reconstruct_into(
            reconstructor, path, info, stage, meshes, progress, stop, animation, preview, on_frame
        )
    except OSError as err:
        discard(stage)
        raise target_error(err, stage, out_dir) from err
    except BaseException:
        discard(stage)
        raise
    folder = place_result(stage, out_dir, stats)
    stats["folder"] = str(folder)
    if folder == out_dir:  # a previous run's optional files no longer match these frames
        stale = [] if preview else ["reconstruction.mp4"]
        stale += [] if animation else ["animation.glb", "blendshapes.csv"]
        for name in stale:
            (out_dir / name).unlink(missing_ok=True)
            remove_leftovers(out_dir / name)
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
    preview: bool = False,
    on_frame=None,
) -> dict:
    # the face found on the decoding thread (FaceTracker: Face Mesh alone between frames, the full
    # detector on a cut or a loss); its crop box followed here, in frame order (CropTracker)
    track, cuts, faces, crops = Track(), CutDetector(), FaceTracker(reconstructor.detector), CropTracker()
    problems: list[str] = []
    started = time.perf_counter()
    bar = tqdm(
        total=info.frames or None, unit="frame", desc=path.name[-24:], leave=False, disable=None
    )  # a bar on a terminal only
    try:
        # Both files are written beside their final names and renamed when complete (Ctrl-C included).
        with (
            VideoWriter(folder / "reconstruction.mp4", info.fps) if preview else nullcontext() as writer,
            atomic_path(folder / "frames.jsonl") as lines_path,
            open(lines_path, "w") as lines,
        ):
            finish = _Finisher(
                reconstructor, path, info, folder, meshes, progress, stop, writer, lines, bar, on_frame
            )
            try:
                # Three stages side by side: decoding and finding the face ahead (prefetch), the
                # viewpoint and shape here, and behind them (OrderedWorker) the reflectance and
                # light, the texture detail, the albedo's running mean and every output of the
                # frame, in frame order.
                found = prefetch(_found(iter_frames(path, problems), cuts, faces))
                with OrderedWorker() as behind:
                    for index, seconds, frame, cut, face in found:
                        if stop is not None and stop():
                            finish.stats["interrupted"] = True
                            break
                        recon = _frame(reconstructor, track, crops, frame, seconds, cut, face)
                        behind.submit(finish, index, seconds, frame, recon, track.number)
            except KeyboardInterrupt:
                finish.stats["interrupted"] = True
            lines.flush()
    finally:
        bar.close()
    stats, last = finish.stats, finish.last
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
        write_clip_animation(reconstructor, folder, info, finish.main.params)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    stats["fps"] = round(stats["frames"] / max(stats["seconds"], 1e-6), 2)
    if problems:
        stats["damaged"] = problems[0]
    export.write_json(stats, folder / "summary.json")
    return stats


class _Finisher:
    """The last stage of a frame, on the OrderedWorker's thread: the texture detail, the running
    albedo, then frames.jsonl, reconstruction.mp4, the meshes, ``on_frame(index, recon)`` with the
    frame's final reconstruction (engine.reconstruct.sequence.FrameRecorder.record) and the progress
    report."""

    def __init__(
        self, reconstructor, path, info, folder, meshes, progress, stop, writer, lines, bar, on_frame=None
    ):
        self.reconstructor, self.path, self.info, self.folder = reconstructor, path, info, folder
        self.meshes, self.progress, self.stop = meshes, progress, stop
        self.writer, self.lines, self.bar = writer, lines, bar
        self.on_frame = on_frame
        self.stats = {"frames": 0, "faces": 0, "tracks": 0, "interrupted": False}
        self.last: Reconstruction | None = None
        self.main = MainShape()
        self.albedo = PersonAlbedo()

    def __call__(self, index: int, seconds: float, frame: np.ndarray, recon, number: int) -> None:
        rec, stats = self.reconstructor, self.stats
        if stats["interrupted"] or (self.stop is not None and self.stop()):
            stats["interrupted"] = True  # stopped: frames still in flight are not written
            return
        if recon is not None:
            self.albedo.finish(rec, recon, number)
            self.last = recon
            self.main.add(number, recon.params)
        stats["frames"] += 1
        stats["faces"] += recon is not None
        stats["tracks"] = number + 1 if self.last is not None else 0
        self.lines.write(to_json(_frame_record(recon, index, self.path, seconds, number)) + "\n")
        if self.writer is not None:
            self.writer.write(_side_by_side(rec, recon, frame))
        if self.meshes and recon is not None:
            mesh = rec.mesh(recon.params, geometry=rec.face_geometry(recon))  # the side-by-side's decoding
            export.write_ply(mesh, self.folder / "meshes" / f"frame_{index:06d}.ply")
        self.bar.update()
        if self.on_frame is not None:
            self.on_frame(index, recon)
        if self.progress is not None:
            self.progress(index + 1, self.info.frames)


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
    reconstructor: Reconstructor,
    track: Track,
    crops: CropTracker,
    frame: np.ndarray,
    seconds: float,
    cut: bool,
    face: Face | None,
) -> Reconstruction | None:
    """A frame's ``face`` (found by _found; ``cut``: a new shot starts here), with the track's
    identity and viewpoint; ``crops`` follows its crop box and says where a track ends. The reflectance,
    light, texture detail and running albedo are left to the finishing thread (PersonAlbedo)."""
    tracked = crops.step(frame, [face] if face is not None else [], seconds, cut=cut)
    if tracked is None or tracked.new_track:
        track.reset()  # no face, or another shot: maybe another person
    if tracked is None:
        return None
    recon = _estimate(reconstructor, frame, tracked)
    if track.someone_else(reconstructor.model, recon.params):
        track.reset()  # the shape is another person's: start their own means (and crop smoothing)
        recon = _estimate(reconstructor, frame, crops.restart(tracked, seconds))
    recon.params = track.update(recon.params)
    return recon


def _found(frames, cuts: CutDetector, faces: FaceTracker):
    """(index, seconds, frame, cut, the tracked face or None) of every frame."""
    try:
        for index, seconds, frame in frames:
            cut = cuts(frame)
            yield index, seconds, frame, cut, faces(frame, redetect=cut)
    finally:
        frames.close()


def _estimate(reconstructor: Reconstructor, frame: np.ndarray, tracked: TrackedFace):
    """The viewpoint and shape; the rest is estimated by the finishing thread (PersonAlbedo)."""
    return reconstructor.reconstruct_face(frame, tracked.face, crop_box=tracked.box, later=True)


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
