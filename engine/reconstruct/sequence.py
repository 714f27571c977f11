"""An edited video as a sequence of frames: compact storage while recording, then export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.facemodel import FaceModel
from engine.params import FaceParams
from engine.reconstruct.editing import Edits, FaceEditor, compact_params, float_params
from engine.render import Renderer

# ------------------------------------------------------------------------------- sequences


@dataclass
class SequenceFrame:
    """One reconstructed video frame, kept small for scrubbing: the crop and the factors."""

    index: int
    crop: np.ndarray  # SxSx3 uint8
    landmarks: np.ndarray  # (68, 2) in crop pixels
    params: FaceParams  # batch of one, CPU; albedo stored as uint8 (a quarter of the memory)

    def full_params(self) -> FaceParams:
        return float_params(self.params)

    def save(self, path: str | Path) -> Path:
        """One .npz (no pickles), written atomically: what a video job leaves for the app to scrub."""
        import io

        from engine.io.atomic import write_bytes

        arrays = {f"params_{k}": v.detach().cpu().numpy() for k, v in self.params.fields().items()}
        buffer = io.BytesIO()
        np.savez(
            buffer,
            index=np.int64(self.index),
            crop=self.crop,
            landmarks=np.asarray(self.landmarks, np.float32),
            **arrays,
        )
        write_bytes(path, buffer.getvalue())
        return Path(path)

    @staticmethod
    def load(path: str | Path) -> SequenceFrame:
        with np.load(path, allow_pickle=False) as data:
            params = FaceParams(
                **{
                    name[7:]: torch.from_numpy(data[name].copy())
                    for name in data.files
                    if name.startswith("params_")
                }
            )
            return SequenceFrame(int(data["index"]), data["crop"].copy(), data["landmarks"].copy(), params)


class FrameRecorder:
    """Keeps every frame's final reconstruction (crop + parameters, compact) so the app can scrub
    through them afterwards: pass :meth:`record` as ``on_frame`` to
    :func:`engine.reconstruct.video.reconstruct_video`.

    Each call carries its frame's index and reconstruction, after the video pipeline has refined
    the parameters (track consensus, smoothing, texture detail) on its threads, so nothing depends
    on the order of calls.
    """

    def __init__(self, max_frames: int = 5000):
        self.max_frames = max_frames
        self.frames: dict[int, SequenceFrame] = {}

    def record(self, index: int, recon) -> SequenceFrame | None:
        """Store frame ``index``'s reconstruction (None: no face in it; nothing is stored)."""
        if recon is None or (index not in self.frames and len(self.frames) >= self.max_frames):
            return None
        from engine.crop import image_to_crop

        landmarks = image_to_crop(recon.face.landmarks, recon.crop_box, recon.crop.shape[0])
        params = recon.params.detach().to("cpu")
        frame = SequenceFrame(index, recon.crop, np.asarray(landmarks, np.float32), compact_params(params))
        self.frames[index] = frame
        return frame


def export_sequence(
    model: FaceModel,
    renderer: Renderer,
    frames: list[SequenceFrame],
    edits: Edits,
    out_dir: str | Path,
    fps: float,
    mesh_format: str | None = "obj",
    progress=None,
    stop=None,
) -> list[Path]:
    """Write the edited sequence: ``sequence.mp4`` (input crop | edited re-render) and, with a
    ``mesh_format``, one mesh per frame in ``meshes/``. Returns the written paths."""
    from engine.io import mesh as export
    from engine.io.video import VideoWriter

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    video_path = out_dir / "sequence.mp4"
    with VideoWriter(video_path, fps) as writer:
        for done, frame in enumerate(frames):
            if stop is not None and stop():
                break
            params = frame.full_params()
            crop = torch.from_numpy(frame.crop).permute(2, 0, 1)[None].float().div(255)
            editor = FaceEditor(model, renderer, params, crop, size=frame.crop.shape[0])
            edited = editor.frame(edits)
            writer.write(np.concatenate([frame.crop, edited.image], axis=1))
            if mesh_format:
                mesh = editor.mesh(edits)
                written += export.write_mesh(
                    mesh, out_dir / "meshes" / f"frame_{frame.index:06d}.{mesh_format}", mesh_format
                )
            if progress is not None:
                progress(done + 1, len(frames))
    written.insert(0, video_path)
    return written
