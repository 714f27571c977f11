"""What the app asks of the engine, as plain functions run on the worker threads (never the GUI's).

No Qt here and no maths: each function calls the engine (``engine.reconstruct.reconstructor``, ``engine.reconstruct.editing``,
``engine.reconstruct.video``, ``engine.io.mesh``) and packs the answer into plain values the widgets can show.
The engine is imported inside the functions, so that importing this module costs nothing at start-up.
The plain values it returns live in values.py, the preview thread's editing in preview_session.py
and the Train tab's run set-up in training_run.py (all importable from here too).
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import numpy as np

from cest_studio.preview_session import PreviewSession, to_edits
from cest_studio.training_run import prepare_training_run
from cest_studio.values import (
    Context,
    EditState,
    FaceResult,
    ModelInfo,
    ModelSpec,
    PreviewFrame,
    SecondFace,
)

log = logging.getLogger("cest_studio")

MESH_FORMATS = ("obj", "ply", "glb")
DISPLAY_SIDE = 1600  # long side of the input image the window keeps for display


def user_message(exc: BaseException) -> str:
    """One clear line for a person; a traceback goes to the log only for unexpected errors."""
    from engine.errors import CestError

    try:
        from engine.detect import NoFaceError
    except Exception:  # noqa: BLE001 - the detector module may fail to import in a broken install
        NoFaceError = ValueError  # noqa: N806
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (CestError, NoFaceError)):
        return text
    if isinstance(exc, FileNotFoundError):
        return text
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller image or video"
    if isinstance(exc, OSError):
        return f"cannot read or write a file: {text}"
    log.error("unexpected error:\n%s", "".join(traceback.format_exception(exc)))
    return f"unexpected error ({type(exc).__name__}): {text}"


def light_fields(settings) -> dict:
    return {
        "azimuth": float(settings.azimuth_deg),
        "elevation": float(settings.elevation_deg),
        "intensity": float(settings.intensity),
        "ambient": float(settings.ambient),
        "color": tuple(float(c) for c in settings.color),
    }


# ------------------------------------------------------------------------------ the models


def available_models(extra: list[str] | None = None) -> list[ModelSpec]:
    """Shipped CEST weights (resources/weights/*.safetensors), the user's models, the landmark fit."""
    from engine.resources import resources_root

    specs = []
    weights_dir = resources_root() / "weights"
    if weights_dir.is_dir():
        for path in sorted(weights_dir.glob("*.safetensors")):
            name = path.stem.replace("cest_", "").replace("_", " ")
            specs.append(ModelSpec("cest", str(path), f"CEST ({name})"))
    seen = {s.weights for s in specs}
    for item in extra or []:
        path = Path(item)
        if str(path) not in seen and path.is_file():
            label = path.parent.name if path.name == "weights.safetensors" else path.stem
            specs.append(ModelSpec("cest", str(path), f"Trained: {label}"))
            seen.add(str(path))
    specs.append(ModelSpec("fit", None, "Landmark fit (no weights)"))
    return specs


# ------------------------------------------------------------------------------ the session


class EngineSession:
    """The engine state of one window: the reconstructor and the faces it made. Used only from the
    engine worker thread (the preview thread reads the faces' immutable tensors)."""

    def __init__(self, device: str = "cpu", detector: str = "auto", threads: int | None = None):
        self.device, self.detector = device, detector
        self.threads = threads
        self.reconstructor = None
        self.spec: ModelSpec | None = None

    # -- model

    def load_model(self, ctx: Context, spec: ModelSpec) -> ModelInfo:
        start = time.perf_counter()
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        from engine.reconstruct.reconstructor import Reconstructor

        old = self.reconstructor
        loaded = old.loaded_detector if old is not None else None  # keep the loaded detector
        try:
            recon = Reconstructor(
                method=spec.kind, weights=spec.weights, device=self.device, detector=loaded or self.detector
            )
        except FileNotFoundError as exc:
            from engine.errors import WeightsError

            raise WeightsError(str(exc)) from exc
        self.reconstructor, self.spec = recon, spec
        if recon.method == "cest":
            description = f"CEST networks ({Path(recon.weights).name})"
        else:
            description = "landmark fit (no trained weights)"
        from engine.lighting import PRESETS

        presets = {name: light_fields(settings) for name, settings in PRESETS.items()}
        return ModelInfo(spec, recon.method, description, time.perf_counter() - start, presets)

    def warm_up(self, ctx: Context) -> None:
        """Load the face detector before the first photo (it takes a moment)."""
        if self.reconstructor is not None:
            self.reconstructor.detector  # noqa: B018 - property loads it

    def _require(self):
        if self.reconstructor is None:
            raise RuntimeError("no model loaded yet")
        return self.reconstructor

    # -- faces

    def reconstruct_image(self, ctx: Context, path: str) -> FaceResult:
        from engine.io.formats import is_video

        if is_video(path):
            raise ValueError(f"{path}: is a video; open it as a video")
        start = time.perf_counter()
        recon = self._require().reconstruct(path)
        return self._face_result(recon, time.perf_counter() - start)

    def _face_result(self, recon, seconds: float, frame: int | None = None) -> FaceResult:
        from engine.reconstruct.editing import light_to_settings, rotation_degrees

        image, landmarks = _display_image(recon.image, recon.face.landmarks)
        r = self._require()
        return FaceResult(
            source=recon.source,
            image=image,
            landmarks=landmarks,
            crop=recon.crop,
            method=recon.method,
            params=recon.params,
            model=r.model,
            renderer=r.renderer,
            light=light_fields(light_to_settings(recon.params.light)),
            pose=rotation_degrees(recon.params),
            seconds=seconds,
            frame=frame,
            record=_face_record(recon),
            **expression_fields(recon.params, r.model),
        )

    def second_face(self, ctx: Context, path: str) -> SecondFace:
        from engine.reconstruct.editing import light_to_settings

        recon = self._require().reconstruct(path)
        return SecondFace(
            source=str(path),
            crop=recon.crop,
            albedo=recon.params.albedo,
            light_tensor=recon.params.light,
            light=light_fields(light_to_settings(recon.params.light)),
            expression=tuple(float(v) for v in recon.params.expression[0].tolist()),
        )

    # -- video (reconstructed in a child process: cest_studio.video_job)

    def load_frame(self, ctx: Context, path: str) -> FaceResult:
        """A frame the video job saved, as a FaceResult for the preview."""
        from engine.reconstruct.sequence import SequenceFrame

        return frame_face(SequenceFrame.load(path), self._require())

    # -- export

    def export_face(
        self,
        ctx: Context,
        face: FaceResult,
        state: EditState,
        second: SecondFace | None,
        folder: str,
        options: dict,
    ) -> list[str]:
        """Write the chosen meshes (with the edited reflectance), maps and params into ``folder``."""
        from engine.io import mesh as export
        from engine.reconstruct.editing import FaceEditor
        from engine.reconstruct.reconstructor import image_tensor

        folder_path = Path(folder)
        folder_path.mkdir(parents=True, exist_ok=True)
        name = options.get("name") or "face"
        edits = to_edits(state, second)
        editor = FaceEditor(
            face.model, face.renderer, face.params, image_tensor(face.crop), face.crop.shape[0]
        )
        written: list[Path] = []
        formats = [f for f in MESH_FORMATS if options.get(f)]
        mesh = editor.mesh(edits, bake_light=bool(options.get("bake_light"))) if formats else None
        for step, fmt in enumerate(formats):
            written += export.write_mesh(mesh, folder_path / f"{name}.{fmt}", fmt)
            ctx.progress(step + 1, len(formats) + 1)
        if options.get("maps"):
            for map_name, image in editor.maps(edits).items():  # "map_": never the OBJ's NAME_albedo.png
                written.append(export.write_png(image, folder_path / f"{name}_map_{map_name}.png"))
            written.append(
                export.write_json(
                    _params_json(face, editor.edited_params(edits)), folder_path / f"{name}_params.json"
                )
            )
        ctx.progress(1, 1)
        return list(dict.fromkeys(str(p) for p in written))

    def export_sequence(
        self,
        ctx: Context,
        frames: list[str],
        state: EditState,
        second: SecondFace | None,
        folder: str,
        fps: float,
        mesh_format: str | None,
    ) -> list[str]:
        """The saved frames (``.npz`` paths) re-rendered with the edits as an MP4, and a mesh each."""
        from engine.reconstruct.sequence import SequenceFrame, export_sequence

        frames = [SequenceFrame.load(path) for path in frames]
        r = self._require()
        edits = to_edits(state, second, keep_pose=False)
        written = export_sequence(
            r.model,
            r.renderer,
            frames,
            edits,
            folder,
            fps,
            mesh_format,
            progress=ctx.progress,
            stop=ctx.stopped,
        )
        return [str(p) for p in written]

    def export_animation(
        self,
        ctx: Context,
        video_dir: str,
        frame_files: dict[int, str],
        fps: float,
        frame_size: tuple[int, int],
        folder: str,
    ) -> list[str]:
        """animation.glb and blendshapes.csv of a reconstructed video (its frames.jsonl) into ``folder``,
        by the writers of ``cest reconstruct --animation``."""
        from engine.reconstruct.animation import main_track_frame, read_records, write_animation
        from engine.reconstruct.sequence import SequenceFrame

        records = read_records(Path(video_dir) / "frames.jsonl")
        params = SequenceFrame.load(frame_files[main_track_frame(records)]).full_params()
        written = write_animation(
            video_dir,
            self._require().model,
            params.identity,
            params.albedo,
            fps,
            frame_size,
            records=records,
            out_dir=folder,
        )
        return [str(p) for p in written]

    # -- training

    def prepare_training(self, ctx: Context, request: dict) -> dict:
        """Write the run's config (base recipe + the tab's settings) and return the command line."""
        return prepare_training_run(request)


def frame_face(frame, reconstructor) -> FaceResult:
    """A reconstructed video frame (engine.reconstruct.editing.SequenceFrame) as a FaceResult; the albedo stays
    compact (uint8) until the preview or an export needs it."""
    from engine.reconstruct.editing import light_to_settings, rotation_degrees

    params = frame.params
    return FaceResult(
        source=f"frame {frame.index + 1}",
        image=frame.crop,
        landmarks=frame.landmarks,
        crop=frame.crop,
        method=reconstructor.method,
        params=params,
        model=reconstructor.model,
        renderer=reconstructor.renderer,
        light=light_fields(light_to_settings(params.light)),
        pose=rotation_degrees(params),
        frame=frame.index,
        **expression_fields(params, reconstructor.model),
    )


def expression_fields(params, model) -> dict:
    """The FaceResult fields of the estimated expression (plain values for the GUI thread)."""
    return {
        "expression": tuple(float(v) for v in params.expression[0].tolist()),
        "expression_names": tuple(model.expression_names),
    }


def _display_image(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    scale = DISPLAY_SIDE / max(h, w)
    if scale >= 1:
        return image, np.asarray(landmarks, np.float32)
    import cv2

    small = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    return small, ((np.asarray(landmarks, np.float32) + 0.5) * scale - 0.5)


def _face_record(recon) -> dict:
    """What params.json holds besides the factors, by the CLI's own rule (engine.reconstruct.views)."""
    from engine.reconstruct.views import params_record

    factors = recon.params.to_json()
    return {k: v for k, v in params_record(recon).items() if k not in factors}


def _params_json(face: FaceResult, params) -> dict:
    """The CLI's params.json layout (original-image pixels) with the edited factors."""
    record = dict(face.record) or {
        "source": face.source,
        "method": face.method,
        "landmarks_68_xy": np.round(face.landmarks, 2).tolist(),
    }
    record.update(params.to_json())
    return record


__all__ = [  # the plain values, the preview and the training run live in their own modules
    "Context",
    "EditState",
    "EngineSession",
    "FaceResult",
    "ModelInfo",
    "ModelSpec",
    "PreviewFrame",
    "PreviewSession",
    "SecondFace",
    "available_models",
    "prepare_training_run",
    "to_edits",
    "user_message",
]
